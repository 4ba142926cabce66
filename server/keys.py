"""Typed application state: every shared object of the server lives under one of these keys."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from server.addresses import AddressLimits
from server.catalog import Catalog
from server.chunk_store import ChunkStore
from server.connections import ConnectionGuard
from server.metrics import Metrics
from server.settings import ServerSettings
from server.telemetry import Telemetry
from wire.errors import ErrorCode


class ConnectedViewer(Protocol):
    """What the application needs of a connected viewer (``server.viewer.Viewer``)."""

    async def close_with(self, code: ErrorCode, message: str) -> None: ...


settings_key = web.AppKey("settings", ServerSettings)
addresses_key = web.AppKey("addresses", AddressLimits)
catalog_key = web.AppKey("catalog", Catalog)
chunk_store_key = web.AppKey("chunk_store", ChunkStore)
connections_key = web.AppKey("connections", ConnectionGuard)
telemetry_key = web.AppKey("telemetry", Telemetry)
metrics_key = web.AppKey("metrics", Metrics)
# the connected viewers (shutdown tells each one; its size enforces max_viewers)
viewers_key: web.AppKey[set[ConnectedViewer]] = web.AppKey("viewers", set)
