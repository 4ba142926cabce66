"""The live channel's *ingest* thread: the feed read and cut into segments off the driver's thread.

The feed blocks (it paces a file, or waits on a network source), so a thread of its own
iterates it, cuts segments (``authoring.live.cutter``) and queues them; the driver takes what
arrived without waiting (``take``). When the feed ends, the frames since the last segment
become the final one and ``count`` tells how many segments the feed delivered in all. A feed
that raises ends the thread: ``failure`` holds its error once the driver has taken the segments
that came before it. Setting ``stop`` (an event the channel owns) ends the feed early; the
segment being collected is then dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Sequence

from authoring.levels import LevelSpec
from authoring.live.cutter import LiveSegment, SegmentCutter
from authoring.live.feed import CapturedFrame


class IngestThread:
    """Cuts a feed into segments on its own thread; the driver takes them (module docstring)."""

    def __init__(
        self,
        chunk_frames: int,
        segment_chunks: int,
        levels: Sequence[LevelSpec],
        stop: threading.Event,
    ) -> None:
        self.chunk_frames = chunk_frames
        self.segment_chunks = segment_chunks
        self.levels = list(levels)
        self.stop = stop
        self.delivered = 0  # segments taken so far
        self.count: int | None = None  # segments of the whole feed, known once it ended
        self.failure: BaseException | None = None  # what ended the feed, once reached
        self._arrived: queue.Queue[LiveSegment | BaseException | None] = queue.Queue()

    def start(self, frames: Iterable[CapturedFrame]) -> None:
        """Read ``frames`` on the ingest thread (a daemon: a stuck feed never holds the exit)."""
        thread = threading.Thread(target=self._run, args=(frames,), name="live-ingest")
        thread.daemon = True
        thread.start()

    def take(self) -> list[LiveSegment]:
        """The segments that arrived since the last call, in order (none after a failure)."""
        segments = []
        while self.failure is None:
            try:
                item = self._arrived.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, BaseException):
                self.failure = item
            elif item is None:
                self.count = self.delivered
            else:
                segments.append(item)
                self.delivered += 1
        return segments

    def _run(self, frames: Iterable[CapturedFrame]) -> None:
        cutter = SegmentCutter(self.chunk_frames, self.segment_chunks, self.levels)
        try:
            for frame in frames:
                if self.stop.is_set():
                    break
                segment = cutter.add(frame)
                if segment is not None:
                    self._arrived.put(segment)
            if not self.stop.is_set():
                last = cutter.finish()
                if last is not None:
                    self._arrived.put(last)
        except BaseException as error:  # the driver reports it
            self._arrived.put(error)
        self._arrived.put(None)
