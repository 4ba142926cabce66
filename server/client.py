"""A Python viewer for the media server (tests, the load benchmark, full-stack emulation)."""

from __future__ import annotations

from typing import Any

import aiohttp

from common.errors import UserError
from wire.errors import ErrorCode
from wire.framing import PROTOCOL_VERSION, ErrorMessage
from wire.media import (
    MAX_CHUNK_PAYLOAD_BYTES,
    MAX_MANIFEST_MESSAGE_BYTES,
    Ack,
    ChunkMessage,
    Get,
    Hello,
    InitStateMessage,
    ManifestMessage,
    ServerMessage,
    Stats,
    parse_server_message,
)

MAX_FRAME_CLIENT_RECEIVES = max(MAX_MANIFEST_MESSAGE_BYTES, MAX_CHUNK_PAYLOAD_BYTES + 8192)  # bytes


class ServerError(UserError):
    """The server answered with an `error` message."""

    def __init__(self, error: ErrorMessage) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error

    @property
    def code(self) -> ErrorCode:
        return self.error.code


class ServerClosed(UserError):
    """The server closed the WebSocket, or the connection is gone (the server crashed)."""


class ViewerClient:
    """One viewer connection; requests wait for their answer (the protocol answers in order)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.manifest: dict[str, Any] | None = None  # the newest manifest received
        self.manifests_received = 0
        self.close_code: int | None = None  # the close code the server sent, once closed

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str, **kwargs: Any) -> ViewerClient:
        """Open ``url`` (``ws://host:port/ws``)."""
        ws = await session.ws_connect(
            url, max_msg_size=MAX_FRAME_CLIENT_RECEIVES, autoping=True, **kwargs
        )
        return cls(ws)

    async def send(self, text: str) -> None:
        """Send one control message; ServerClosed when the connection is gone."""
        try:
            await self.ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError) as error:
            raise ServerClosed(f"the connection is gone: {error}") from None

    async def receive(self, timeout: float | None = 10.0) -> ServerMessage:
        """The next server message (any kind); raises ServerClosed when the socket closes."""
        try:
            message = await self.ws.receive(timeout=timeout)
        except (aiohttp.ClientError, ConnectionError) as error:
            raise ServerClosed(f"the connection is gone: {error}") from None
        if message.type is aiohttp.WSMsgType.TEXT:
            parsed = parse_server_message(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            parsed = parse_server_message(bytes(message.data))
        else:
            if message.type is aiohttp.WSMsgType.CLOSE:
                self.close_code = int(message.data)  # the server's code, even if our reply failed
            elif self.close_code is None:
                self.close_code = self.ws.close_code
            raise ServerClosed(f"socket {message.type.name.lower()} (close code {self.close_code})")
        if isinstance(parsed, ManifestMessage):
            self.manifest = parsed.manifest
            self.manifests_received += 1
        return parsed

    async def answer(self, timeout: float | None = 10.0) -> ServerMessage:
        """The next message that is not a re-sent manifest; `error` raises ServerError."""
        while True:
            message = await self.receive(timeout)
            if isinstance(message, ErrorMessage):
                raise ServerError(message)
            if not isinstance(message, ManifestMessage):
                return message

    async def hello(
        self,
        channel: str,
        *,
        abr: str | None = None,
        user_agent: str | None = None,
        version: int = PROTOCOL_VERSION,
    ) -> tuple[dict[str, Any], bytes]:
        """Join ``channel``: returns (manifest, init.bin bytes)."""
        await self.send(
            Hello(channel=channel, version=version, abr=abr, user_agent=user_agent).encode()
        )
        first = await self.receive()
        if isinstance(first, ErrorMessage):
            raise ServerError(first)
        assert isinstance(first, ManifestMessage), f"expected manifest, got {first.TYPE}"
        init_state = await self.answer()
        assert isinstance(init_state, InitStateMessage), (
            f"expected init_state, got {init_state.TYPE}"
        )
        return first.manifest, init_state.data

    async def get(
        self, chunk: int, level: int, *, prefix: bool = False, ack: bool = True
    ) -> ChunkMessage:
        """Fetch one chunk (and acknowledge it)."""
        await self.send(Get(chunk=chunk, level=level, prefix=prefix).encode())
        message = await self.answer()
        assert isinstance(message, ChunkMessage), f"expected chunk, got {message.TYPE}"
        if ack:
            await self.send(Ack(chunk=chunk, level=level).encode())
        return message

    async def stats(self, stats: Stats) -> None:
        await self.send(stats.encode())

    async def close(self) -> None:
        await self.ws.close()
