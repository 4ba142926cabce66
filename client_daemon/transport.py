"""The transport layer: one page's WebSocket connection to the daemon.

The connection's own task reads the socket; a sender task turns the pipeline's outcomes
into `segment`/`error` messages and a status task reports speed about once a second.
Every refused message gets an `error` reply and the connection goes on; nothing a page
sends can stop the daemon or another page. A page that sends nothing for the idle timeout
while none of its chunks is queued gets `idle_timeout` and is closed (its stream's slot is
freed); a page that leaves at any moment, right after its `open` included, is no error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from client_daemon.pipeline import Failure, Segment, SessionPipeline
from client_daemon.session import ChunkJob, Session
from client_daemon.settings import DaemonSettings
from common.log_throttle import LogThrottle
from wire.daemon import (
    MAX_MEDIA_PAYLOAD_BYTES,
    InitSegment,
    MediaSegment,
    Open,
    Seek,
    Status,
    parse_page_message,
)
from wire.errors import CLOSE_CODES, ErrorCode, ProtocolError
from wire.framing import ErrorMessage
from wire.media import ChunkMessage

log = logging.getLogger(__name__)

MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's reason is at most 123 bytes of UTF-8


def origin_refusal(origin: str | None, allowed: tuple[str, ...]) -> str | None:
    """Why a page of ``origin`` may not connect, or None when it may.

    Browsers always send Origin on WebSocket handshakes, so a missing Origin is a local
    program (a test client, the emulator), not a web page, and is let in.
    """
    if origin is None or origin in allowed:
        return None
    return f"origin {origin[:60]} not allowed; start the daemon with --allow-origin {origin[:60]}"


def close_reason(text: str) -> str:
    """``text`` cut to what fits a close frame."""
    data = text.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return data.decode("utf-8", "ignore")


class SessionHost(Protocol):
    """What a page connection needs from the daemon that accepted it."""

    settings: DaemonSettings
    device_name: str
    refusals: LogThrottle  # one line per refused origin an interval

    @property
    def generator_id(self) -> str: ...

    def claim_session(self) -> None: ...

    def release_session(self) -> None: ...

    async def open_stream(self, request: Open) -> tuple[Session, SessionPipeline, bytes, str]: ...


@dataclass
class _ActiveSession:
    session: Session
    pipeline: SessionPipeline
    sender: asyncio.Task[None]


class PageConnection:
    """Serves one page: its session (after `open`), its chunks, its status reports."""

    def __init__(self, websocket: ServerConnection, daemon: SessionHost) -> None:
        self.websocket = websocket
        self.daemon = daemon
        self._active: _ActiveSession | None = None

    async def run(self) -> None:
        """Handle the page until it disconnects."""
        origin = self.websocket.request.headers.get("Origin") if self.websocket.request else None
        refusal = origin_refusal(origin, self.daemon.settings.allowed_origins)
        if refusal is not None:
            self.daemon.refusals.log(logging.WARNING, str(origin), "refused a page: %s", refusal)
            await self._send_error(ProtocolError(ErrorCode.FORBIDDEN_ORIGIN, refusal))
            await self.websocket.close(
                CLOSE_CODES[ErrorCode.FORBIDDEN_ORIGIN], close_reason(refusal)
            )
            return
        status = asyncio.create_task(self._report_status())
        try:
            while (message := await self._next_message()) is not None:
                await self._handle(message)
        except ConnectionClosed:
            pass  # the page went away, possibly mid-chunk; its work is dropped below
        finally:
            status.cancel()
            await self._end_session()

    async def _next_message(self) -> str | bytes | None:
        """The page's next message; None once it idled out (told and closed)."""
        timeout_s = self.daemon.settings.idle_timeout_s
        while True:
            try:
                async with asyncio.timeout(timeout_s):
                    return await self.websocket.recv()  # cancelling recv() loses nothing
            except TimeoutError:
                pipeline = self._active.pipeline if self._active else None
                if pipeline is not None and pipeline.queue_depth > 0:
                    continue  # its chunks are still being generated: we keep it waiting
                reason = f"no message for {timeout_s:g} s"
                await self._send_error(ProtocolError(ErrorCode.IDLE_TIMEOUT, reason))
                await self.websocket.close(CLOSE_CODES[ErrorCode.IDLE_TIMEOUT], reason)
                return None

    async def _handle(self, message: str | bytes) -> None:
        parsed = None
        try:
            parsed = parse_page_message(message)
            if isinstance(parsed, Open):
                await self._open(parsed)
                return
            if self._active is None:
                raise ProtocolError(
                    ErrorCode.OPEN_REQUIRED,
                    f"'{_type_of(parsed)}' before 'open': open a stream first",
                )
            if isinstance(parsed, Seek):
                self._active.session.accept_seek(parsed)
            elif isinstance(parsed, ChunkMessage):
                job = self._active.session.accept_chunk(parsed)
                await self._submit(self._active, job)
        except ProtocolError as error:
            if isinstance(parsed, ChunkMessage):
                await self._send_error(error, chunk=parsed.chunk, level=parsed.level)
            else:
                await self._send_error(error)
            if error.code in CLOSE_CODES:
                await self.websocket.close(CLOSE_CODES[error.code], close_reason(error.message))
        except ConnectionClosed:
            raise  # the page left (right after its `open`, say): no error, run() ends it
        except Exception as error:  # a failing engine or a bug: tell the page, keep serving
            log.exception("handling a %s message failed", _type_of(parsed))
            await self._send_error(ProtocolError(ErrorCode.INTERNAL, f"the daemon failed: {error}"))

    @staticmethod
    async def _submit(active: _ActiveSession, job: ChunkJob) -> None:
        """Queue a chunk, waiting while this page's queue is full (backpressure).

        Gives up when the page's sender has stopped (the page left): nothing would ever
        make room, and the reader must get back to the socket to see the close.
        """
        submit = asyncio.ensure_future(active.pipeline.submit(job))
        await asyncio.wait({submit, active.sender}, return_when=asyncio.FIRST_COMPLETED)
        if not submit.done():
            submit.cancel()

    async def _open(self, request: Open) -> None:
        replacing = self._active is not None  # another `open` on this page keeps its slot
        if not replacing:
            self.daemon.claim_session()
        try:
            session_parts = await self.daemon.open_stream(request)
        except BaseException:
            if not replacing:
                self.daemon.release_session()
            raise
        await self._end_session(release=False)
        session, pipeline, init_segment, mime = session_parts
        sender = asyncio.create_task(self._send_outcomes(session, pipeline))
        self._active = _ActiveSession(session, pipeline, sender)
        await self.websocket.send(InitSegment(mime, init_segment).encode())

    async def _end_session(self, *, release: bool = True) -> None:
        if self._active is not None:
            self._active.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._active.sender
            self._active = None
            if release:
                self.daemon.release_session()

    async def _send_outcomes(self, session: Session, pipeline: SessionPipeline) -> None:
        with contextlib.suppress(ConnectionClosed):  # the page left: stop, dropping its work
            await self._send_each_outcome(session, pipeline)

    async def _send_each_outcome(self, session: Session, pipeline: SessionPipeline) -> None:
        async for outcome in pipeline.outcomes():
            job = outcome.job
            if isinstance(outcome, Failure):
                session.break_continuity()
                await self._send_error(outcome.error, chunk=job.index, level=job.level)
                continue
            assert isinstance(outcome, Segment)
            if len(outcome.data) > MAX_MEDIA_PAYLOAD_BYTES:
                session.break_continuity()
                await self._send_error(
                    ProtocolError(
                        ErrorCode.GENERATION_FAILED,
                        f"segment of {len(outcome.data)} bytes exceeds {MAX_MEDIA_PAYLOAD_BYTES}",
                    ),
                    chunk=job.index,
                    level=job.level,
                )
                continue
            message = MediaSegment(
                level=job.level,
                chunk=job.index,
                part=outcome.part,
                parts=outcome.parts,
                frames=outcome.frames,
                generation_ms=round(outcome.generation_ms, 2),
                encode_ms=round(outcome.encode_ms, 2),
                data=outcome.data,
            )
            await self.websocket.send(message.encode())

    async def _report_status(self) -> None:
        while True:
            await asyncio.sleep(self.daemon.settings.status_interval_s)
            pipeline = self._active.pipeline if self._active else None
            status = Status(
                fps=round(pipeline.meter.fps, 2) if pipeline else 0.0,
                queue_depth=pipeline.queue_depth if pipeline else 0,
                device=self.daemon.device_name,
                generator_id=self.daemon.generator_id,
            )
            with contextlib.suppress(ConnectionClosed):
                await self.websocket.send(status.encode())

    async def _send_error(
        self, error: ProtocolError, *, chunk: int | None = None, level: int | None = None
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.websocket.send(
                ErrorMessage.from_error(error, chunk=chunk, level=level).encode()
            )


def _type_of(message: object) -> str:
    return str(getattr(message, "TYPE", type(message).__name__))
