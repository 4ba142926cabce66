"""One page's pipeline off the event loop: chunk -> generation (GPU thread) -> encoding -> outcomes.

Generation runs on the daemon's single generation thread (shared by every page, which take
turns slice by slice: ``client_daemon.scheduler``); encoding runs on this page's own encoder
thread. Frames pass
between them batch by batch through a :class:`FrameChannel`, so encoding chunk ``j``
overlaps generating chunk ``j+1`` and the rest of chunk ``j`` itself: each GOP of a chunk
becomes its own media segment, handed to the page as soon as it (and the GOPs before it) is
encoded, so playback can start one GOP after a chunk arrives. A bounded job queue gives
backpressure: when it is full, :meth:`SessionPipeline.submit` waits, the connection stops
reading, and only this page's socket backs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from client_daemon.muxer import GopSegment, SegmentMuxer
from client_daemon.session import ChunkJob
from client_daemon.settings import QUEUE_DEPTH
from common.log_throttle import LogThrottle
from common.threads import call_in_loop
from prompts.chunk import ChunkFormatError, PromptChunk
from prompts.stream_model import GeneratorMismatchError
from wire.errors import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

FPS_WINDOW_CHUNKS = 8  # chunks averaged by the fps meter


class EngineStream(Protocol):
    """What the pipeline needs from ``engines``' open stream."""

    slice_frames: int  # frames the next model call is given (read before each slice)
    last_slice_frames: int  # frames the slice run last was given

    def iter_slices(
        self, chunk: PromptChunk, prefix: PromptChunk | None = None
    ) -> Iterator[list[np.ndarray]]:
        """The chunk one slice at a time: each item lists the frame batches (uint8, the
        stream's frame format) that reached the host meanwhile."""
        ...


class Scheduler(Protocol):
    """The daemon's generation thread (``client_daemon.scheduler.SliceScheduler``)."""

    def submit(
        self, steps: Generator[Any, None, Any], owner: Any = None
    ) -> asyncio.Future[Any]: ...

    def forget(self, owner: Any) -> None: ...


class SliceSizer:
    """Frames per model call of one stream: at most ``most`` (the memory bound and the
    backend's batch), and when ``adaptive`` about ``target_s`` of generation, from the time its
    own slices took (the first slice is one frame: a 2048x2048 frame on a CPU takes seconds).

    A backend that compiles per shape (``specialises_shapes``) keeps ``most``: each new slice
    size would compile for a minute.
    """

    def __init__(self, most: int, target_s: float, *, adaptive: bool) -> None:
        self.most = most
        self.target_s = target_s
        self.adaptive = adaptive
        self.frames = 1 if adaptive else most

    def observe(self, frames: int, seconds: float) -> int:
        """A slice of ``frames`` took ``seconds``: the frames of the next one."""
        if self.adaptive and frames > 0 and seconds > 0:
            fit = int(self.target_s / (seconds / frames))
            self.frames = max(1, min(self.most, fit, 2 * max(frames, self.frames)))
        return self.frames


@dataclass(frozen=True)
class Segment:
    """One GOP of a chunk, encoded: part ``part`` of ``parts``, and where the time went."""

    job: ChunkJob
    part: int
    parts: int
    data: bytes
    frames: int  # frames of this part
    generation_ms: float  # from the chunk's generation start until this part's last frame was in
    encode_ms: float  # x264 and muxing of this part

    @property
    def last(self) -> bool:
        """The chunk's last part: the chunk is complete with it."""
        return self.part == self.parts - 1


@dataclass(frozen=True)
class Failure:
    """A chunk that could not be generated or encoded, as the error to send."""

    job: ChunkJob
    error: ProtocolError


Outcome = Segment | Failure


class _End:
    """Marks the end of a FrameChannel, with the producer's error if it failed."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class FrameChannel:
    """Frame batches from the generation thread to the encoder thread, in order."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[np.ndarray | _End] = queue.SimpleQueue()
        self.started_at: float | None = None  # time.perf_counter() when generation began

    def put(self, batch: np.ndarray) -> None:
        self._queue.put(batch)

    def close(self, error: BaseException | None = None) -> None:
        """No more batches; the consumer raises ``error`` if one is given."""
        self._queue.put(_End(error))

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item


class FpsMeter:
    """Frames per second the pipeline sustains: frames / time of the slower stage, windowed."""

    def __init__(self, window: int = FPS_WINDOW_CHUNKS) -> None:
        self._samples: deque[tuple[int, float]] = deque(maxlen=window)

    def add(self, frames: int, seconds: float) -> None:
        self._samples.append((frames, seconds))

    @property
    def fps(self) -> float:
        seconds = sum(s for _, s in self._samples)
        return sum(f for f, _ in self._samples) / seconds if seconds > 0 else 0.0


def _release_on_cancel(channel: FrameChannel) -> Callable[[asyncio.Future[float]], None]:
    """Done-callback: a generation cancelled before it ran still ends the encoder's channel."""

    def callback(future: asyncio.Future[float]) -> None:
        if future.cancelled():
            channel.close(asyncio.CancelledError())

    return callback


@dataclass(eq=False)
class _InFlight:
    job: ChunkJob
    channel: FrameChannel
    generation: asyncio.Future[float]
    encoding: asyncio.Future[None]
    parts: asyncio.Queue[
        GopSegment | _End
    ]  # the encoder's GOPs in order, then the end (with its error)


class SessionPipeline:
    """Chunks of one page in, segments (or failures) out in the same order."""

    def __init__(
        self,
        stream: EngineStream,
        muxer: SegmentMuxer,
        scheduler: Scheduler,
        *,
        depth: int = QUEUE_DEPTH,
        sizer: SliceSizer | None = None,
        failures: LogThrottle | None = None,
    ) -> None:
        self._stream = stream
        self._muxer = muxer
        self._scheduler = scheduler
        self._sizer = sizer
        # failed chunks are logged with their traceback, at most once a kind an interval (the
        # daemon shares one throttle between its pages: a page that reconnects gains nothing)
        self._failures = failures or LogThrottle(log)
        if sizer is not None:
            stream.slice_frames = sizer.frames
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="promptus-encode")
        self._jobs: asyncio.Queue[ChunkJob] = asyncio.Queue(maxsize=depth)
        # one chunk may wait here (generated or generating) while the previous is encoded
        self._in_flight: asyncio.Queue[_InFlight] = asyncio.Queue(maxsize=1)
        self._busy = 0  # chunks taken from _jobs and not yet turned into an outcome
        self._flights: set[_InFlight] = set()  # started and not yet finished, for cancellation
        self.meter = FpsMeter()

    @property
    def queue_depth(self) -> int:
        """Chunks accepted and not yet answered."""
        return self._jobs.qsize() + self._busy

    async def submit(self, job: ChunkJob) -> None:
        """Queue a chunk; waits while the queue is full (backpressure to this page only)."""
        await self._jobs.put(job)

    async def outcomes(self) -> AsyncIterator[Outcome]:
        """Run the pipeline, yielding each chunk's outcome in order; cancel to stop."""
        feeder = asyncio.create_task(self._start_chunks())
        try:
            while True:
                flight = await self._in_flight.get()
                async for outcome in self._finish(flight):
                    if flight in self._flights and (isinstance(outcome, Failure) or outcome.last):
                        self._flights.discard(flight)  # answered: no longer counts as queued
                        self._busy -= 1
                    yield outcome
        finally:
            feeder.cancel()
            for flight in self._flights:  # a generation still queued behind other pages is dropped
                _drop(flight.generation)
                _drop(flight.encoding)
            # a running generation or encoding finishes in its thread; its result is dropped
            self._encoder.shutdown(wait=False, cancel_futures=True)
            self._muxer.close()
            self._scheduler.forget(self)

    async def _start_chunks(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._jobs.get()
            self._busy += 1
            channel = FrameChannel()
            generation = self._scheduler.submit(self._generate(job, channel), owner=self)
            generation.add_done_callback(_release_on_cancel(channel))
            parts: asyncio.Queue[GopSegment | _End] = asyncio.Queue()
            encoding = loop.run_in_executor(self._encoder, self._encode, job, channel, parts, loop)
            flight = _InFlight(job, channel, generation, encoding, parts)
            self._flights.add(flight)
            await self._in_flight.put(flight)
            # the next chunk's generation starts once this one's frames are out (engine order)
            await asyncio.wait([generation])

    def _generate(self, job: ChunkJob, channel: FrameChannel) -> Generator[None, None, float]:
        """Generation thread, one slice per step: the chunk's frames into ``channel``; returns
        milliseconds (other pages' slices run between the steps)."""
        started = channel.started_at = time.perf_counter()
        try:
            count = 0
            slices = self._stream.iter_slices(job.chunk, job.prefix)
            while True:
                slice_started = time.perf_counter()
                landed = next(slices, None)
                if landed is None:
                    break
                if self._sizer is not None:  # the next slice's frames, from this one's time
                    self._stream.slice_frames = self._sizer.observe(
                        self._stream.last_slice_frames, time.perf_counter() - slice_started
                    )
                for batch in landed:
                    count += batch.shape[0]
                    if count > job.frames:
                        raise RuntimeError(_frame_count_error(count, job.frames))
                    channel.put(batch)  # the encoder starts on it while later slices generate
                if count == job.frames:
                    break  # the last GOP closes now, not after one more round of other pages
                yield
            if count != job.frames:
                raise RuntimeError(_frame_count_error(count, job.frames))
        except BaseException as error:
            channel.close(error)
            raise
        channel.close()
        return (time.perf_counter() - started) * 1000

    def _encode(
        self,
        job: ChunkJob,
        channel: FrameChannel,
        parts: asyncio.Queue[GopSegment | _End],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Encoder thread: the chunk's GOP segments into ``parts`` as each is done, then the end."""

        def put(item: GopSegment | _End) -> None:
            call_in_loop(loop, parts.put_nowait, item)  # dropped if the daemon is shutting down

        try:
            self._muxer.encode_gops(channel, job.chunk.frame_start, put)
        except BaseException as error:
            put(_End(error))
            raise
        put(_End(None))

    async def _finish(self, flight: _InFlight) -> AsyncIterator[Outcome]:
        """The chunk's parts as they are encoded, then (if it failed) its failure."""
        job = flight.job
        parts = self._muxer.gop_count(job.frames)
        encode_ms = 0.0
        index = 0
        while not isinstance(item := await flight.parts.get(), _End):
            started = flight.channel.started_at or item.ready_at
            encode_ms += item.encode_ms
            segment = Segment(
                job,
                index,
                parts,
                item.data,
                item.frames,
                (item.ready_at - started) * 1000,
                item.encode_ms,
            )
            index += 1
            if segment.last:  # every frame is out: the generation thread is done with this chunk
                with contextlib.suppress(Exception):  # (its failure, if any, is reported below)
                    generation_ms = await flight.generation
                    parallel = min(self._muxer.encoders, parts)  # GOPs encode side by side
                    self.meter.add(job.frames, max(generation_ms, encode_ms / parallel) / 1000)
            yield segment
        await asyncio.gather(flight.encoding, return_exceptions=True)  # its error is in `item`
        if item.error is None and index == parts:
            return
        try:
            await flight.generation
        except Exception as error:  # noqa: BLE001 - every failure becomes an `error` message
            yield Failure(job, self._classify(error, job))
            return
        self._failures.log(
            logging.ERROR,
            "encoding",
            "encoding chunk %d of level %d failed",
            job.index,
            job.level,
            exc_info=item.error,
        )
        reason = item.error or RuntimeError(f"{index} of {parts} GOPs encoded")
        yield Failure(job, ProtocolError(ErrorCode.GENERATION_FAILED, f"encoding failed: {reason}"))

    def _classify(self, error: Exception, job: ChunkJob) -> ProtocolError:
        where = f"chunk {job.index} of level {job.level}"
        if isinstance(error, GeneratorMismatchError):
            return ProtocolError(ErrorCode.GENERATOR_MISMATCH, f"{where}: {error}")
        if isinstance(error, ChunkFormatError):
            return ProtocolError(ErrorCode.BAD_CHUNK, f"{where} cannot be decoded: {error}")
        self._failures.log(
            logging.ERROR, type(error).__name__, "generating %s failed", where, exc_info=error
        )
        return ProtocolError(ErrorCode.GENERATION_FAILED, f"generating {where} failed: {error}")


def _frame_count_error(count: int, expected: int) -> str:
    return f"engine returned {count} frames or more, expected {expected}"


def _drop(future: asyncio.Future[Any]) -> None:
    """Cancel ``future`` if it has not started; its late result or error is discarded."""
    future.cancel()
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
