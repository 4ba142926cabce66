"""One viewer's WebSocket (`/ws`): hello -> manifest, get -> chunk, stats/ack -> telemetry.

Only this handler's task reads from its socket. Every refused message is answered with an
`error` and the loop goes on; only the closing codes of ``wire.errors.CLOSE_CODES`` end it.
The session wires three socket-free parts: which chunk a `get` may have
(``server.availability``), the deliveries awaiting their ack (``server.deliveries``) and the
connection's telemetry rows (``server.telemetry_session``).
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import WSMsgType, web

from server.addresses import address_key
from server.availability import available_chunk
from server.catalog import Channel
from server.chunk_store import ChunkReadError, PrefixGapError
from server.deliveries import Delivery
from server.frame_guard import MaskedFramesOnly
from server.keys import (
    addresses_key,
    catalog_key,
    chunk_store_key,
    metrics_key,
    settings_key,
    telemetry_key,
    viewers_key,
)
from server.rate_limit import TokenBucket
from server.telemetry_session import TelemetrySession
from wire.errors import CLOSE_CODES, ErrorCode, ProtocolError
from wire.framing import HEADER_LENGTH, ErrorMessage
from wire.media import MAX_FRAME_SERVER_RECEIVES, Ack, Get, Hello, Stats, parse_client_message

log = logging.getLogger(__name__)

RATE_ERROR_INTERVAL_S = 1.0  # at most one rate_limited reply per second (no amplification)
CLOSE_NOTICE_TIMEOUT_S = 2.0  # time given to the farewell `error` of a closing connection


class SlowClient(Exception):
    """The client did not take our data within the send timeout."""


class Viewer:
    """One connection: its channel, rate limit and telemetry session, and the messages it reads."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, address: str) -> None:
        app = request.app
        self.request = request
        self.ws = ws
        self.address = address  # the key of the per-address limits
        self.settings = app[settings_key]
        self.catalog = app[catalog_key]
        self.store = app[chunk_store_key]
        self.metrics = app[metrics_key]
        self.addresses = app[addresses_key]
        self.channel: Channel | None = None
        self.sent_version = -1
        self.clock = self.settings.clock
        self.bucket = TokenBucket(self.settings.rate_per_s, self.settings.rate_burst, self.clock())
        self.session = TelemetrySession(
            app[telemetry_key], self.settings.telemetry_rows_per_min, self.clock
        )
        self.last_heard = self.clock()
        self.last_rate_error = -RATE_ERROR_INTERVAL_S

    async def serve(self) -> None:
        """Read and answer messages until the peer leaves, idles out or misbehaves fatally."""
        while True:
            silent_for = self.clock() - self.last_heard
            if silent_for >= self.settings.idle_timeout_s:
                await self.close_with(
                    ErrorCode.IDLE_TIMEOUT, f"no message for {self.settings.idle_timeout_s:g} s"
                )
                return
            wait_s = self.settings.idle_timeout_s - silent_for
            if self.settings.idle_check_s is not None:
                wait_s = min(wait_s, self.settings.idle_check_s)
            try:
                message = await self.ws.receive(timeout=wait_s)
            except TimeoutError:
                continue
            self.last_heard = self.clock()
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if not await self.on_frame(message.data):
                    return
            elif message.type in (WSMsgType.PING, WSMsgType.PONG):
                await self.on_control(message)
            elif message.type is WSMsgType.ERROR:
                # aiohttp already closed the socket (e.g. 1009 for a frame over the socket limit)
                log.info("viewer socket error: %s", message.data)
                if self.ws.close_code == 1009:
                    self.metrics.count_error(ErrorCode.MESSAGE_TOO_LARGE)
                return
            else:  # CLOSE, CLOSING, CLOSED
                return

    async def on_control(self, message: aiohttp.WSMessage) -> None:
        """Pings and pongs share the message rate: a ping within it is answered, others are
        dropped unanswered (no amplification, no reply per ping of a flood)."""
        if not self.bucket.allow(self.clock()):
            self.metrics.dropped_messages_total += 1
            return
        if message.type is WSMsgType.PING:
            await self.ws.pong(message.data)

    async def on_frame(self, data: str | bytes) -> bool:
        """Answer one frame; False when the connection was closed because of it."""
        now = self.clock()
        if not self.bucket.allow(now):
            self.metrics.dropped_messages_total += 1
            if now - self.last_rate_error >= RATE_ERROR_INTERVAL_S:
                self.last_rate_error = now
                await self.send_error(
                    ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        f"more than {self.settings.rate_per_s:g} messages per second; message dropped",
                    )
                )
            return True
        request: Get | None = None
        try:
            message = parse_client_message(data)
            self.metrics.messages_total[message.TYPE] += 1
            request = message if isinstance(message, Get) else None
            if isinstance(message, Hello):
                await self.on_hello(message)
                return True
            await self.sync_manifest()
            if isinstance(message, Get):
                await self.on_get(message)
            elif isinstance(message, Stats):
                self.session.report(message)
            elif isinstance(message, Ack):
                self.session.acked(message.chunk, message.level, at=time.time())
        except ProtocolError as error:
            if error.code in CLOSE_CODES:
                await self.close_with(error.code, error.message)
                return False
            if request is None:
                await self.send_error(error)
            else:
                await self.send_error(error, chunk=request.chunk, level=request.level)
        except (SlowClient, ConnectionError):
            raise
        except Exception:  # a bug in handling one message must not end the connection
            log.exception("viewer message %r failed", data[:200])
            await self.send_error(
                ProtocolError(ErrorCode.INTERNAL, "the server failed on this message")
            )
        return True

    def require_session(self) -> None:
        if self.session.id is None:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send 'hello' before this message")

    async def on_hello(self, hello: Hello) -> None:
        channel = self.catalog.get(hello.channel)
        if channel is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_CHANNEL, f"no channel {hello.channel!r} on this server"
            )
        wait_s = self.addresses.spend_manifest(self.address, len(channel.message), self.clock())
        if wait_s is not None:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"hellos from this address asked for more manifest bytes than its budget of "
                f"{self.settings.manifest_bytes_per_s / 2**20:g} MiB/s; retry in "
                f"{max(1.0, wait_s):.0f} s",
            )
        self.session.start(
            channel=channel.name,
            user_agent=hello.user_agent,
            abr=hello.abr,
            generator_id=channel.manifest.stream.generator_id,
            server_id=self.settings.server_id,
        )
        self.channel = channel
        await self.send(channel.message)
        self.sent_version = channel.version
        try:
            init_state = await self.store.init_state_message(channel)
        except ChunkReadError as error:
            raise self.store.unreadable_media(channel, error) from None
        await self.send(init_state)

    async def sync_manifest(self) -> None:
        """Send the channel's manifest again if it changed since we last sent it."""
        self.require_session()
        assert self.channel is not None
        current = self.catalog.get(self.channel.name)
        if current is None:
            self.session.end()
            self.channel = None
            raise ProtocolError(
                ErrorCode.UNKNOWN_CHANNEL, "the channel was removed from this server"
            )
        self.channel = current
        if current.version != self.sent_version:
            await self.send(current.message)
            self.sent_version = current.version

    async def on_get(self, get: Get) -> None:
        channel = self.channel
        assert channel is not None and self.session.id is not None
        cell = available_chunk(
            channel.manifest,
            get.level,
            get.chunk,
            live_ahead_chunks=self.settings.live_ahead_chunks,
        )
        requested_at = time.time()
        try:
            wire = await self.store.chunk_message(channel, get.level, get.chunk, get.prefix)
        except PrefixGapError as error:
            raise ProtocolError(ErrorCode.GAP, str(error)) from None
        except ChunkReadError as error:
            raise self.store.unreadable_media(channel, error) from None
        await self.send(wire)
        prefix_bytes = (
            len(wire) - HEADER_LENGTH.size - HEADER_LENGTH.unpack_from(wire)[0] - cell.bytes
        )
        self.metrics.chunks_served_total += 1
        self.metrics.bytes_sent_total += len(wire)
        self.metrics.prefixes_served_total += prefix_bytes > 0
        delivery = Delivery(
            chunk=get.chunk,
            level=get.level,
            size=cell.bytes,
            prefix_bytes=prefix_bytes,
            requested_at=requested_at,
            sent_at=time.time(),
        )
        self.session.sent(delivery)

    async def send(self, data: str | bytes) -> None:
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                if isinstance(data, str):
                    await self.ws.send_str(data)
                else:
                    await self.ws.send_bytes(data)
        except TimeoutError:
            raise SlowClient(
                f"client took no data for {self.settings.send_timeout_s:g} s"
            ) from None

    async def send_error(
        self, error: ProtocolError, *, chunk: int | None = None, level: int | None = None
    ) -> None:
        self.metrics.count_error(error.code)
        await self.send(ErrorMessage.from_error(error, chunk=chunk, level=level).encode())

    async def close_with(self, code: ErrorCode, message: str) -> None:
        """Send a closing `error` (best effort) and close with the code's WebSocket close code."""
        self.metrics.count_error(code)
        await say_goodbye(self.ws, self.request.transport, code, message)


async def say_goodbye(
    ws: web.WebSocketResponse,
    transport: asyncio.Transport | None,
    code: ErrorCode,
    message: str,
) -> None:
    """Closing notice: `error` then close with CLOSE_CODES[code]; never raises, never hangs."""
    try:
        async with asyncio.timeout(CLOSE_NOTICE_TIMEOUT_S):
            if not ws.closed:
                await ws.send_str(ErrorMessage(code=code, message=message).encode())
            await ws.close(code=CLOSE_CODES[code], message=str(code).encode())
    except (TimeoutError, ConnectionError, RuntimeError):
        # the peer did not finish the closing handshake: drop the connection, or its
        # handler would wait in receive() until the idle timeout (and hold up shutdown)
        if transport is not None:
            transport.abort()


async def handle_viewer(request: web.Request) -> web.WebSocketResponse:
    """The `/ws` route."""
    app = request.app
    settings, metrics, viewers = app[settings_key], app[metrics_key], app[viewers_key]
    # compress=False: chunks are already entropy-coded, deflating them per viewer only burns CPU;
    # autoping=False: pings share the viewer's message rate (Viewer.on_control)
    ws = web.WebSocketResponse(
        max_msg_size=MAX_FRAME_SERVER_RECEIVES, compress=False, autoping=False
    )
    await ws.prepare(request)
    # from here on every client frame must be masked (bytes that arrived with the handshake
    # itself were already handed to aiohttp; a browser never sends any)
    MaskedFramesOnly.install(request.transport, on_refused=metrics.count_unmasked)
    if len(viewers) >= settings.max_viewers:
        metrics.count_error(ErrorCode.SERVER_FULL)
        limit = f"this server is at its limit of {settings.max_viewers} viewers"
        await say_goodbye(ws, request.transport, ErrorCode.SERVER_FULL, limit)
        return ws
    address = address_key(request.remote)
    limits = app[addresses_key]
    if not limits.admit(address, settings.clock()):
        metrics.count_error(ErrorCode.SERVER_FULL)
        limit = (
            f"this address already has {limits.max_sockets} connections, the limit per address "
            f"(the server holds {len(viewers)} of {settings.max_viewers})"
        )
        await say_goodbye(ws, request.transport, ErrorCode.SERVER_FULL, limit)
        return ws
    viewer = Viewer(request, ws, address)
    viewers.add(viewer)
    metrics.viewers += 1
    metrics.connections_total += 1
    try:
        await viewer.serve()
    except SlowClient as error:
        log.info("dropping a slow viewer: %s", error)
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass  # the peer went away while we were sending
    finally:
        viewers.discard(viewer)
        metrics.viewers -= 1
        limits.leave(address, settings.clock())
        viewer.session.end()
    return ws
