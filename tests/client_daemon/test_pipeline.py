"""SessionPipeline with the real tiny generator: order, overlap bookkeeping, backpressure, failures."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from client_daemon.daemon import ENGINE_FRAME_FORMAT
from client_daemon.mp4 import box_types, segment_sample_count
from client_daemon.muxer import EncoderSettings, H264Muxer
from client_daemon.pipeline import Failure, FpsMeter, FrameChannel, Segment, SessionPipeline
from client_daemon.scheduler import SliceScheduler
from client_daemon.session import ChunkJob
from tests.client_daemon.helpers import FPS, SIZE, init_latent, make_chunk, prefix_for
from wire.errors import ErrorCode


@pytest.fixture
def generation_thread():
    scheduler = SliceScheduler()
    yield scheduler
    scheduler.shutdown(wait=True)


def make_pipeline(  # noqa: ANN201
    generator,
    executor,
    depth: int = 2,
    gop_frames: int = EncoderSettings.gop_frames,  # noqa: ANN001
):
    stream = generator.open_stream(
        width=SIZE, height=SIZE, init_latent=init_latent(), frame_format=ENGINE_FRAME_FORMAT
    )
    muxer = H264Muxer(SIZE, SIZE, FPS, EncoderSettings(gop_frames=gop_frames))
    return SessionPipeline(stream, muxer, executor, depth=depth)


def job(index: int, generator_id: str, *, level: int = 0, prefix: bool = False) -> ChunkJob:
    chunk = make_chunk(index, generator_id, level=level)
    return ChunkJob(
        level, chunk, prefix_for(index, generator_id, level=level) if prefix else None, 0.0
    )


def test_frame_channel_hands_batches_over_in_order_and_ends() -> None:
    channel = FrameChannel()
    a, b = np.zeros((1, 2, 2, 3), np.uint8), np.ones((2, 2, 2, 3), np.uint8)
    channel.put(a)
    channel.put(b)
    channel.close()
    assert [x.shape[0] for x in channel] == [1, 2]
    failing = FrameChannel()
    failing.close(RuntimeError("engine broke"))
    with pytest.raises(RuntimeError, match="engine broke"):
        list(failing)


def test_fps_meter_is_frames_over_stage_time() -> None:
    meter = FpsMeter(window=2)
    assert meter.fps == 0.0
    meter.add(60, 0.5)
    meter.add(60, 1.5)
    assert meter.fps == pytest.approx(60.0)
    meter.add(30, 0.1)  # the oldest sample leaves the window
    assert meter.fps == pytest.approx(90 / 1.6)


async def test_outcomes_come_in_order_with_timings(tiny_generator, generation_thread) -> None:  # noqa: ANN001
    pipeline = make_pipeline(tiny_generator, generation_thread)
    gid = tiny_generator.generator_id
    await pipeline.submit(job(0, gid))
    await pipeline.submit(job(1, gid, level=1, prefix=True))
    outcomes = pipeline.outcomes()
    first, second = await anext(outcomes), await anext(outcomes)
    await outcomes.aclose()
    assert isinstance(first, Segment) and isinstance(second, Segment)
    assert (first.job.index, second.job.index) == (0, 1)
    assert (first.part, first.parts, first.frames) == (0, 1, 4) and first.last  # 4 frames: one GOP
    assert first.generation_ms > 0 and first.encode_ms > 0
    assert pipeline.queue_depth == 0
    assert pipeline.meter.fps > 0


async def test_a_chunk_comes_out_gop_by_gop(tiny_generator, generation_thread) -> None:  # noqa: ANN001
    pipeline = make_pipeline(tiny_generator, generation_thread, gop_frames=3)
    await pipeline.submit(job(0, tiny_generator.generator_id))  # 4 frames: GOPs of 3 and 1
    outcomes = pipeline.outcomes()
    first, second = await anext(outcomes), await anext(outcomes)
    await outcomes.aclose()
    assert [(s.part, s.parts, s.frames, s.last) for s in (first, second)] == [
        (0, 2, 3, False),
        (1, 2, 1, True),
    ]
    assert box_types(first.data) == ["moof", "mdat"] and segment_sample_count(first.data) == 3
    assert 0 < first.generation_ms <= second.generation_ms  # the second GOP's frames came later
    assert pipeline.queue_depth == 0 and pipeline.meter.fps > 0


async def test_full_queue_holds_the_page_back(tiny_generator, generation_thread) -> None:  # noqa: ANN001
    pipeline = make_pipeline(tiny_generator, generation_thread, depth=1)
    gid = tiny_generator.generator_id
    await pipeline.submit(job(0, gid))
    blocked = asyncio.create_task(pipeline.submit(job(1, gid)))
    await asyncio.sleep(0.2)
    assert not blocked.done(), "a full queue must make the sender wait"
    assert pipeline.queue_depth == 1
    outcomes = pipeline.outcomes()  # consuming frees the queue
    assert isinstance(await anext(outcomes), Segment)
    await asyncio.wait_for(blocked, timeout=60)
    assert isinstance(await anext(outcomes), Segment)
    await outcomes.aclose()


async def test_engine_failures_become_errors_and_the_pipeline_goes_on(
    tiny_generator, generation_thread
) -> None:  # noqa: ANN001
    pipeline = make_pipeline(tiny_generator, generation_thread)
    gid = tiny_generator.generator_id
    await pipeline.submit(job(1, gid))  # no chunk 0 before it and no prefix: the engine refuses
    await pipeline.submit(job(0, "tiny:someone-else"))
    outcomes = pipeline.outcomes()
    missing, mismatch = await anext(outcomes), await anext(outcomes)
    assert isinstance(missing, Failure) and missing.error.code == ErrorCode.BAD_CHUNK
    assert "needs the keyframe at frame 4" in missing.error.message
    assert isinstance(mismatch, Failure) and mismatch.error.code == ErrorCode.GENERATOR_MISMATCH
    await pipeline.submit(job(0, gid))
    assert isinstance(await anext(outcomes), Segment)
    await outcomes.aclose()


async def test_closing_drops_queued_work(tiny_generator) -> None:  # noqa: ANN001
    scheduler = SliceScheduler()
    gate = threading.Event()
    scheduler.call(gate.wait)  # the generation thread is busy with another page's work
    stream = tiny_generator.open_stream(width=SIZE, height=SIZE, init_latent=init_latent())
    generated: list[int] = []
    iter_slices = stream.iter_slices

    def counting_iter(chunk, prefix):  # noqa: ANN001, ANN202
        generated.append(chunk.index)
        return iter_slices(chunk, prefix)

    stream.iter_slices = counting_iter
    pipeline = SessionPipeline(
        stream, H264Muxer(SIZE, SIZE, FPS), scheduler
    )  # RGB frames: also taken
    gid = tiny_generator.generator_id
    await pipeline.submit(job(0, gid))
    await pipeline.submit(job(1, gid))
    outcomes = pipeline.outcomes()
    consumer = asyncio.create_task(anext(outcomes))
    await asyncio.sleep(0.05)
    assert not consumer.done(), "chunk 0 cannot be ready while the generation thread is busy"
    consumer.cancel()  # the page went away mid-chunk
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await outcomes.aclose()
    await asyncio.sleep(0)  # the cancellations reach the scheduler's queue
    gate.set()
    scheduler.shutdown(wait=True)  # nothing left stuck on the generation thread
    assert generated == [], "queued chunks of a page that left must never be generated"
