"""A Python page for the daemon: open a stream, send prompt chunks, collect fMP4 segments.

Used by the tests, ``scripts/bench_daemon.py`` and the emulator's full mode. It speaks the
same messages as the browser player (``wire.daemon``); it sends no Origin header, as a
local program (browsers always send one).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from common.errors import UserError
from prompts.ladder import Ladder
from wire.daemon import (
    MAX_FRAME_PAGE_RECEIVES,
    DaemonMessage,
    InitSegment,
    MediaSegment,
    Open,
    Seek,
    Status,
    StreamSetup,
    parse_daemon_message,
)
from wire.framing import ErrorMessage
from wire.media import encode_chunk_message

REPLY_TIMEOUT_S = 60.0  # seconds to wait for the daemon's answer to one request


class DaemonError(UserError):
    """The daemon refused a request; carries its `error` message."""

    def __init__(self, error: ErrorMessage) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class DaemonClosed(UserError):
    """The daemon cannot be reached, closed the connection, or is gone (it crashed)."""


class DaemonClient:
    """One page's connection to the daemon."""

    def __init__(self, websocket: ClientConnection, timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.websocket = websocket
        self.timeout_s = timeout_s
        self.last_status: Status | None = None

    @classmethod
    async def connect(
        cls, url: str, *, origin: str | None = None, timeout_s: float = REPLY_TIMEOUT_S
    ) -> DaemonClient:
        """Connect to a daemon at ``url`` (``ws://127.0.0.1:9090``); DaemonClosed if none answers."""
        try:
            websocket = await connect(
                url,
                origin=origin,  # type: ignore[arg-type]  # websockets types Origin as a NewType
                max_size=MAX_FRAME_PAGE_RECEIVES,
                compression=None,
            )
        except (OSError, InvalidHandshake) as error:
            raise DaemonClosed(f"cannot reach the daemon at {url}: {error}") from None
        return cls(websocket, timeout_s)

    async def __aenter__(self) -> DaemonClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.websocket.close()

    async def send(self, message: str | bytes) -> None:
        """Send one message; DaemonClosed when the connection is gone."""
        try:
            await self.websocket.send(message)
        except ConnectionClosed as error:
            raise DaemonClosed(_closed(error)) from None

    async def open(self, setup: StreamSetup, init_state: bytes) -> InitSegment:
        """Open a stream; returns the init segment (raises DaemonError if refused)."""
        await self.send(Open(stream=setup, init_state=init_state).encode())
        reply = await self.reply()
        if not isinstance(reply, InitSegment):
            raise TypeError(f"expected an init segment, got {type(reply).__name__}")
        return reply

    async def open_ladder(self, ladder: Ladder) -> InitSegment:
        """Open the stream of a ladder directory."""
        setup = StreamSetup.from_manifest(ladder.manifest.to_json())
        return await self.open(setup, ladder.init_state_bytes())

    async def send_chunk(
        self, level: int, chunk: int, data: bytes, prefix: bytes = b"", channel: str = "local"
    ) -> None:
        """Forward one chunk (and its switch prefix) as the page does."""
        await self.send(encode_chunk_message(channel, level, chunk, data, prefix))

    async def seek(self, chunk: int) -> None:
        """Announce that the next chunk is ``chunk``."""
        await self.send(Seek(chunk=chunk).encode())

    async def reply(self) -> InitSegment | MediaSegment:
        """The next init or segment; `status` is kept in ``last_status``; an `error` raises
        DaemonError, a closed connection DaemonClosed (after any error the daemon sent last)."""
        async with asyncio.timeout(self.timeout_s):
            while True:
                try:
                    raw = await self.websocket.recv()
                except ConnectionClosed as error:
                    raise DaemonClosed(_closed(error)) from None
                message: DaemonMessage = parse_daemon_message(raw)
                if isinstance(message, Status):
                    self.last_status = message
                elif isinstance(message, ErrorMessage):
                    raise DaemonError(message)
                else:
                    return message

    async def segment(self) -> MediaSegment:
        """The next media segment: one GOP of a chunk (raises DaemonError if the chunk was refused)."""
        reply = await self.reply()
        if not isinstance(reply, MediaSegment):
            raise TypeError(f"expected a media segment, got {type(reply).__name__}")
        return reply

    async def chunk_segments(self) -> list[MediaSegment]:
        """The media segments of the next chunk, one per GOP, through its last."""
        segments = [await self.segment()]
        while segments[-1].part < segments[-1].parts - 1:
            segments.append(await self.segment())
        return segments


def _closed(error: ConnectionClosed) -> str:
    """What a closed daemon connection says: the close code and reason, or that it vanished."""
    if error.rcvd is None:
        return "the daemon is gone: the connection broke without a close (did it crash?)"
    reason = f": {error.rcvd.reason}" if error.rcvd.reason else ""
    return f"the daemon closed the connection (code {error.rcvd.code}{reason})"
