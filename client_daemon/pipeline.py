"""One page's pipeline off the event loop: chunk -> generation (GPU thread) -> encoding -> outcome.

Generation runs on the daemon's single generation thread (shared by every page, so pages
take turns chunk by chunk); encoding runs on this page's own encoder thread. Frames pass
between them batch by batch through a :class:`FrameChannel`, so encoding chunk ``j``
overlaps generating chunk ``j+1`` (and, with an engine that yields batches, the rest of
chunk ``j`` itself). A bounded job queue gives backpressure: when it is full,
:meth:`SessionPipeline.submit` waits, the connection stops reading, and only this page's
socket backs up.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from client_daemon.muxer import SegmentMuxer
from client_daemon.session import ChunkJob
from client_daemon.settings import QUEUE_DEPTH
from prompts.chunk import ChunkFormatError, PromptChunk
from prompts.stream_model import GeneratorMismatchError
from wire.errors import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

FPS_WINDOW_CHUNKS = 8  # chunks averaged by the fps meter


class EngineStream(Protocol):
    """What the pipeline needs from ``engines``' open stream."""

    def iter_chunk(
        self, chunk: PromptChunk, prefix: PromptChunk | None = None
    ) -> Iterator[np.ndarray]:
        """Frames uint8 [B, H, W, 3] of the chunk, batch by batch as they are ready."""
        ...


@dataclass(frozen=True)
class Segment:
    """A finished chunk: its media segment and where the time went."""

    job: ChunkJob
    data: bytes
    generation_ms: float
    encode_ms: float


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
        self.wait_s = 0.0  # time the consumer spent waiting for frames (not encoding)

    def put(self, batch: np.ndarray) -> None:
        self._queue.put(batch)

    def close(self, error: BaseException | None = None) -> None:
        """No more batches; the consumer raises ``error`` if one is given."""
        self._queue.put(_End(error))

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            started = time.perf_counter()
            item = self._queue.get()
            self.wait_s += time.perf_counter() - started
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
    generation: asyncio.Future[float]
    encoding: asyncio.Future[tuple[bytes, float]]


class SessionPipeline:
    """Chunks of one page in, segments (or failures) out in the same order."""

    def __init__(
        self,
        stream: EngineStream,
        muxer: SegmentMuxer,
        generation_executor: Executor,
        *,
        depth: int = QUEUE_DEPTH,
    ) -> None:
        self._stream = stream
        self._muxer = muxer
        self._generation_executor = generation_executor
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
                outcome = await self._finish(flight)
                self._flights.discard(flight)
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

    async def _start_chunks(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._jobs.get()
            self._busy += 1
            channel = FrameChannel()
            generation = loop.run_in_executor(
                self._generation_executor, self._generate, job, channel
            )
            generation.add_done_callback(_release_on_cancel(channel))
            encoding = loop.run_in_executor(self._encoder, self._encode, job, channel)
            flight = _InFlight(job, generation, encoding)
            self._flights.add(flight)
            await self._in_flight.put(flight)
            # the next chunk's generation starts once this one's frames are out (engine order)
            await asyncio.wait([generation])

    def _generate(self, job: ChunkJob, channel: FrameChannel) -> float:
        """Generation thread: the chunk's frames into ``channel``; returns milliseconds."""
        started = time.perf_counter()
        try:
            count = 0
            for batch in self._stream.iter_chunk(job.chunk, job.prefix):
                count += batch.shape[0]
                if count > job.frames:
                    break
                channel.put(batch)  # the encoder starts on it while later groups generate
            if count != job.frames:
                raise RuntimeError(f"engine returned {count} frames or more, expected {job.frames}")
        except BaseException as error:
            channel.close(error)
            raise
        channel.close()
        return (time.perf_counter() - started) * 1000

    def _encode(self, job: ChunkJob, channel: FrameChannel) -> tuple[bytes, float]:
        """Encoder thread: the chunk's media segment and the milliseconds spent encoding."""
        started = time.perf_counter()
        segment = self._muxer.media_segment(channel, job.chunk.frame_start)
        return segment, (time.perf_counter() - started - channel.wait_s) * 1000

    async def _finish(self, flight: _InFlight) -> Outcome:
        job = flight.job
        try:
            generation_ms = await flight.generation
        except Exception as error:  # noqa: BLE001 - every failure becomes an `error` message
            await asyncio.gather(flight.encoding, return_exceptions=True)
            return Failure(job, _classify(error, job))
        try:
            data, encode_ms = await flight.encoding
        except Exception as error:  # noqa: BLE001
            log.exception("encoding chunk %d of level %d failed", job.index, job.level)
            return Failure(
                job, ProtocolError(ErrorCode.GENERATION_FAILED, f"encoding failed: {error}")
            )
        self.meter.add(job.frames, max(generation_ms, encode_ms) / 1000)
        return Segment(job, data, generation_ms, encode_ms)


def _drop(future: asyncio.Future[Any]) -> None:
    """Cancel ``future`` if it has not started; its late result or error is discarded."""
    future.cancel()
    future.add_done_callback(lambda done: done.cancelled() or done.exception())


def _classify(error: Exception, job: ChunkJob) -> ProtocolError:
    where = f"chunk {job.index} of level {job.level}"
    if isinstance(error, GeneratorMismatchError):
        return ProtocolError(ErrorCode.GENERATOR_MISMATCH, f"{where}: {error}")
    if isinstance(error, ChunkFormatError):
        return ProtocolError(ErrorCode.BAD_CHUNK, f"{where} cannot be decoded: {error}")
    log.error("generating %s failed", where, exc_info=error)
    return ProtocolError(ErrorCode.GENERATION_FAILED, f"generating {where} failed: {error}")
