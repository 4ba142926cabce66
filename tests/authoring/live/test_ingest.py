"""The live channel's ingest thread: segments in order, the feed's end and its failure (no runner)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from authoring.levels import LevelSpec
from authoring.live.cutter import LiveSegment
from authoring.live.feed import CapturedFrame
from authoring.live.ingest import IngestThread

IMAGE = np.zeros((8, 8, 3), np.uint8)


def frames(count: int, error: BaseException | None = None) -> Iterator[CapturedFrame]:
    for index in range(count):
        yield CapturedFrame(index, IMAGE, 100.0 + index)
    if error is not None:
        raise error


def ingest(stop: threading.Event | None = None) -> IngestThread:
    return IngestThread(10, 1, [LevelSpec(2, 5)], stop or threading.Event())


def take_until(thread: IngestThread, done: Callable[[], bool]) -> list[LiveSegment]:
    """Everything the thread hands over until ``done()`` holds (5 s at most)."""
    taken: list[LiveSegment] = []
    deadline = time.monotonic() + 5.0
    while not done() and time.monotonic() < deadline:
        taken += thread.take()
        time.sleep(0.005)
    return taken


def test_a_feed_becomes_segments_in_order_and_its_end_the_count() -> None:
    thread = ingest()
    thread.start(frames(27))  # segments of 10 frames + 1: two, and 7 frames left, a final one
    segments = take_until(thread, lambda: thread.count is not None)
    assert [(s.index, s.first_chunk, s.final) for s in segments] == [
        (0, 0, False), (1, 1, False), (2, 2, True),
    ]  # fmt: skip
    assert thread.count == thread.delivered == 3 and thread.failure is None
    assert thread.take() == []


def test_a_failing_feed_hands_over_the_segments_before_its_error() -> None:
    thread = ingest()
    thread.start(frames(12, OSError("the camera went away")))
    segments = take_until(thread, lambda: thread.failure is not None)
    assert [s.index for s in segments] == [0]
    assert isinstance(thread.failure, OSError) and thread.count is None
    assert thread.take() == []  # nothing after the failure, not even the end


def test_stop_ends_the_feed_and_drops_the_segment_being_collected() -> None:
    stop = threading.Event()
    stop.set()
    thread = ingest(stop)
    thread.start(frames(30))
    assert take_until(thread, lambda: thread.count is not None) == []
    assert thread.count == 0
