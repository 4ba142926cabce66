"""`create_app(settings)`: the media server's aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.addresses import AddressLimits
from server.catalog import Catalog
from server.chunk_store import ChunkStore
from server.connections import ConnectionGuard, track_requests
from server.keys import (
    addresses_key,
    catalog_key,
    chunk_store_key,
    connections_key,
    metrics_key,
    settings_key,
    telemetry_key,
    viewers_key,
)
from server.metrics import Metrics
from server.retention import Retention
from server.settings import ServerSettings
from server.telemetry import Telemetry
from server.telemetry_db import open_backend
from server.viewer import handle_viewer
from server.web_files import add_web_player
from wire.errors import ErrorCode

log = logging.getLogger(__name__)

SERVER_HEADER = (
    "promptus"  # the `Server:` of every response: no versions to look vulnerabilities up by
)


def create_app(settings: ServerSettings) -> web.Application:
    """The application: `/ws`, `/healthz`, `/channels`, `/metrics` and the web player at `/`."""
    app = web.Application(middlewares=[track_requests])
    app[settings_key] = settings
    app[connections_key] = ConnectionGuard(
        max_pending_per_address=settings.max_pending_per_address,
        max_pending=settings.max_pending,
        log_interval_s=settings.log_interval_s,
    )
    app[catalog_key] = Catalog(settings.media_dir, settings.catalog_poll_s, settings.log_interval_s)
    app[chunk_store_key] = ChunkStore(settings.cache_bytes, settings.log_interval_s)
    app[telemetry_key] = Telemetry(
        open_backend(settings.telemetry, max_bytes=settings.telemetry_max_bytes),
        flush_s=settings.telemetry_flush_s,
        max_rows=settings.telemetry_queue_rows,
        close_timeout_s=settings.telemetry_close_timeout_s,
        retention=Retention(
            max_age_s=settings.telemetry_retention_s,
            max_bytes=settings.telemetry_max_bytes,
            every_s=settings.telemetry_prune_s,
        ),
    )
    app[metrics_key] = Metrics()
    app[addresses_key] = AddressLimits(
        max_sockets=settings.max_per_address,
        manifest_bytes_per_s=settings.manifest_bytes_per_s,
        manifest_burst_bytes=settings.manifest_burst_bytes,
    )
    app[viewers_key] = set()
    app.router.add_get("/ws", handle_viewer)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/channels", handle_channels)
    app.router.add_get("/metrics", handle_metrics)
    add_web_player(app, settings.web_dir)
    app.cleanup_ctx.append(catalog_ctx)
    app.cleanup_ctx.append(telemetry_ctx)
    app.on_shutdown.append(notify_viewers)
    app.on_response_prepare.append(hide_server_version)
    return app


async def hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    """``Server: promptus`` instead of aiohttp's ``Python/3.x aiohttp/3.x``."""
    response.headers["Server"] = SERVER_HEADER


async def handle_healthz(request: web.Request) -> web.Response:
    """Liveness: 200 with the number of channels and viewers, and the ladders refused."""
    app = request.app
    catalog = app[catalog_key]
    return web.json_response(
        {
            "status": "ok",
            "channels": len(catalog),
            "viewers": app[metrics_key].viewers,
            "bad_channels": dict(sorted(catalog.problems.items())),
        }
    )


async def handle_channels(request: web.Request) -> web.Response:
    """The channels and the generator each one needs (the page lists them for a person to pick)."""
    catalog = request.app[catalog_key]
    channels = []
    for channel in catalog.channels():
        stream = channel.manifest.stream
        channels.append(
            {
                "name": channel.name,
                "generator": {"id": stream.generator_id, "name": stream.generator_name},
                "live": stream.live,
                "seconds": round(stream.frames / stream.fps, 3),
                "levels": len(channel.manifest.levels),
            }
        )
    return web.json_response({"channels": channels})


async def handle_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    app = request.app
    store, telemetry, catalog = app[chunk_store_key], app[telemetry_key], app[catalog_key]
    addresses, connections = app[addresses_key], app[connections_key]
    text = app[metrics_key].render(
        {
            "promptus_pending_sockets": (
                "Sockets waiting for a request's headers (half-sent requests, idle keep-alive).",
                lambda: connections.pending,
            ),
            "promptus_refused_pending_sockets": (
                "Sockets closed at accept: their address or the server had its maximum waiting "
                "for request headers, since start.",
                lambda: connections.refused_pending,
            ),
            "promptus_malformed_requests": (
                "Requests that were not HTTP (answered 400 and closed) since start.",
                lambda: connections.malformed,
            ),
            "promptus_accept_failures": (
                "Connections the server could not accept (out of file descriptors) since start.",
                lambda: connections.accept_failures,
            ),
            "promptus_channels": ("Channels in the catalog.", lambda: len(catalog)),
            "promptus_bad_channels": (
                "Ladders refused by the last catalog scan (reasons in /healthz).",
                lambda: len(catalog.problems),
            ),
            "promptus_client_addresses": (
                "Client addresses with sockets or a spent manifest budget.",
                lambda: len(addresses),
            ),
            "promptus_refused_sockets_per_address": (
                "Sockets refused by the per-address limit since start.",
                lambda: addresses.refused_sockets,
            ),
            "promptus_refused_manifests": (
                "Hellos refused by their address's manifest byte budget since start.",
                lambda: addresses.refused_manifests,
            ),
            "promptus_failed_catalog_scans": (
                "Catalog scans that failed (out of file descriptors, a broken disk) since start.",
                lambda: catalog.failed_scans,
            ),
            "promptus_unreadable_media": (
                "Requests refused because a ladder file could not be read, since start.",
                lambda: store.unreadable,
            ),
            "promptus_cache_bytes": (
                "Bytes of encoded chunk messages cached.",
                lambda: store.cached_bytes,
            ),
            "promptus_cache_hits": ("Chunk cache hits since start.", lambda: store.hits),
            "promptus_cache_misses": ("Chunk cache misses since start.", lambda: store.misses),
            "promptus_telemetry_queued_rows": (
                "Telemetry rows waiting for the database.",
                lambda: telemetry.queued,
            ),
            "promptus_telemetry_written_rows": (
                "Telemetry rows written since start.",
                lambda: telemetry.written,
            ),
            "promptus_telemetry_dropped_rows": (
                "Telemetry rows dropped (queue overflow).",
                lambda: telemetry.dropped,
            ),
            "promptus_telemetry_failures": (
                "Failed telemetry writes since start.",
                lambda: telemetry.failures,
            ),
            "promptus_telemetry_throttled_rows": (
                "Telemetry rows not written: over a connection's rows per minute.",
                lambda: telemetry.throttled,
            ),
            "promptus_telemetry_pruned_rows": (
                "Telemetry rows deleted by retention and the size cap since start.",
                lambda: telemetry.pruned,
            ),
            "promptus_telemetry_bytes": (
                "Size of the telemetry data at the last prune.",
                lambda: telemetry.size_bytes,
            ),
        }
    )
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the catalog before serving, then keep it fresh in the background."""
    catalog = app[catalog_key]
    await catalog.refresh()
    log.info(
        "serving %d channels from %s: %s (a daemon plays a channel only with the generator "
        "named in brackets; /channels lists them)",
        len(catalog),
        catalog.media_dir,
        ", ".join(
            f"{channel.name} [{channel.manifest.stream.generator_id}]"
            for channel in catalog.channels()
        ),
    )
    task = asyncio.create_task(catalog.watch(), name="catalog-watch")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def telemetry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the telemetry flush task; flush and close the database at the end."""
    telemetry = app[telemetry_key]
    task = asyncio.create_task(telemetry.run(), name="telemetry-flush")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await telemetry.close()


async def notify_viewers(app: web.Application) -> None:
    """Graceful shutdown: every viewer gets `error going_away` and a 1001 close."""
    connected = app[viewers_key]
    viewers = list(connected)
    if viewers:
        log.info("shutting down: telling %d viewers", len(viewers))
        # close_with is bounded by its own timeout, so this ends even with stuck clients
        await asyncio.gather(
            *(v.close_with(ErrorCode.GOING_AWAY, "the server is shutting down") for v in viewers)
        )
