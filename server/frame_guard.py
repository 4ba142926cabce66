"""Refuse unmasked client frames, which aiohttp's WebSocket reader accepts.

RFC 6455 section 5.1: a client masks every frame it sends and a server must close the
connection when one is not masked (masking is what keeps a page's bytes from poisoning
proxies and caches on the way). The guard sits between the viewer's socket and aiohttp's
protocol (``transport.set_protocol``, public asyncio API): it follows the frame headers in
the byte stream, passes the bytes through while every frame is masked, and at the first
unmasked frame sends a close frame 1002 and closes the socket; aiohttp then sees the
connection end.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

PROTOCOL_ERROR = 1002  # WebSocket close code
_REASON = b"unmasked client frame"
_CLOSE_FRAME = bytes([0x88, 2 + len(_REASON)]) + struct.pack(">H", PROTOCOL_ERROR) + _REASON


class FrameHeaders:
    """Follows WebSocket frame boundaries in a byte stream; reports the first unmasked frame."""

    def __init__(self) -> None:
        self._header = bytearray()  # bytes of the header being read
        self._skip = 0  # payload bytes (and mask key) of the current frame still to pass

    def unmasked_at(self, data: bytes) -> int | None:
        """Offset in ``data`` where an unmasked frame starts, or None when all frames so far
        are masked (a header split across reads is completed by the next call)."""
        position = 0
        size = len(data)
        while position < size:
            if self._skip:
                step = min(self._skip, size - position)
                self._skip -= step
                position += step
                continue
            start = position - len(self._header)
            self._header.append(data[position])
            position += 1
            needed = self._header_length()
            if needed is None or len(self._header) < needed:
                continue
            if not self._header[1] & 0x80:
                return max(start, 0)
            self._skip = 4 + self._payload_length()  # the mask key, then the payload
            self._header.clear()
        return None

    def _header_length(self) -> int | None:
        if len(self._header) < 2:
            return None
        short = self._header[1] & 0x7F
        return 2 + (2 if short == 126 else 8 if short == 127 else 0)

    def _payload_length(self) -> int:
        short = self._header[1] & 0x7F
        if short == 126:
            return int(struct.unpack_from(">H", self._header, 2)[0])
        if short == 127:
            return int(struct.unpack_from(">Q", self._header, 2)[0])
        return short


class MaskedFramesOnly(asyncio.Protocol):
    """Passes a WebSocket's bytes to ``inner`` until a client frame arrives unmasked."""

    def __init__(
        self,
        inner: asyncio.Protocol,
        transport: asyncio.Transport,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._inner = inner
        self._transport = transport
        self._headers = FrameHeaders()
        self._refused = False
        self._on_refused = on_refused

    @classmethod
    def install(
        cls, transport: asyncio.BaseTransport | None, on_refused: Callable[[], None] | None = None
    ) -> None:
        """Put a guard in front of the protocol of ``transport`` (after the handshake)."""
        if not isinstance(transport, asyncio.Transport):
            return
        inner = transport.get_protocol()
        if isinstance(inner, asyncio.Protocol):  # a stream's (aiohttp's is one)
            transport.set_protocol(cls(inner, transport, on_refused))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        offset = self._headers.unmasked_at(data)
        if offset is None:
            self._inner.data_received(data)
            return
        self._refused = True
        if offset:
            self._inner.data_received(data[:offset])  # the frames before it were fine
        if self._on_refused is not None:
            self._on_refused()
        self._transport.write(_CLOSE_FRAME)
        self._transport.close()  # flushes the close frame, then aiohttp sees connection_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
