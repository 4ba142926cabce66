"""Frames of a live feed cut into closed segments at chunk boundaries, as they arrive.

A segment covers ``segment_chunks`` whole chunks. Its fit also sees the next segment's first
frame (the segment's last keyframe sits there, ``authoring.segments``), so a segment is ready
one frame after its last chunk ends. When the feed ends, the frames since the last segment
become a final, shorter segment if every level can lay out a keyframe interval on them;
otherwise they are dropped (at most the largest interval of frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from authoring.levels import LevelSpec
from authoring.live.feed import CapturedFrame
from authoring.segments import Segment


@dataclass(frozen=True)
class FramesFrom:
    """A segment's frames addressed by their numbers on the channel's clock, the way the
    catalogue's tasks address a whole title's frames (``Segment.frames_of`` slices them): a
    live segment ships only its own frames to a task, the feed has no whole to slice."""

    frames: np.ndarray
    first: int  # number of ``frames[0]`` on the channel's clock

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise IndexError(f"only plain slices of frame numbers, got {key!r}")
        start = self.first if key.start is None else key.start
        if start < self.first:
            raise IndexError(f"frames from {self.first} on hold no {key!r}")
        stop = self.first + len(self.frames) if key.stop is None else key.stop
        return self.frames[start - self.first : stop - self.first]


@dataclass(frozen=True)
class LiveSegment:
    """The frames of one segment (every level fits the same ones) and when they were captured."""

    index: int
    first_chunk: int
    end_chunk: int  # exclusive
    chunk_frames: int
    total_frames: int  # frames of the channel so far (the fit's frames end there at most)
    frames: np.ndarray  # uint8 [n, H, W, 3]: frames [first_frame, fit end)
    captured_at: tuple[float, ...]  # wall-clock capture time of each of ``frames``
    final: bool = False  # the feed ended with this segment

    @property
    def first_frame(self) -> int:
        return self.first_chunk * self.chunk_frames

    @property
    def ready_at(self) -> float:
        """When the last frame its fit needs was captured (the earliest it could be fitted)."""
        return self.captured_at[-1]

    @property
    def channel_frames(self) -> FramesFrom:
        """The frames by channel frame number (what ``fit_segments_task`` slices)."""
        return FramesFrom(self.frames, self.first_frame)

    def chunk_captured_at(self, index: int) -> float:
        """When the first frame of chunk ``index`` (one of this segment's) was captured."""
        return self.captured_at[index * self.chunk_frames - self.first_frame]

    def for_level(self, title: str, level: LevelSpec, level_id: int) -> Segment:
        """The ``authoring.segments.Segment`` a fit task of one level works on."""
        return Segment(
            title, level, level_id, self.index, self.first_chunk, self.end_chunk,
            self.chunk_frames, self.total_frames,
        )  # fmt: skip


class SegmentCutter:
    """Collects captured frames; hands out each segment as soon as its fit can start."""

    def __init__(self, chunk_frames: int, segment_chunks: int, levels: list[LevelSpec]) -> None:
        if chunk_frames < 1 or segment_chunks < 1:
            raise ValueError("a segment holds at least one chunk of at least one frame")
        self.chunk_frames = chunk_frames
        self.segment_frames = chunk_frames * segment_chunks
        self.longest_interval = max(level.interval for level in levels)
        self.index = 0
        self.first_frame = 0  # of the segment being collected
        self._images: list[np.ndarray] = []
        self._times: list[float] = []

    def add(self, frame: CapturedFrame) -> LiveSegment | None:
        """Take the next frame; returns a segment when this frame completes one."""
        if frame.index != self.first_frame + len(self._images):
            raise ValueError(
                f"frame {frame.index} arrived, expected {self.first_frame + len(self._images)}"
            )
        self._images.append(frame.image)
        self._times.append(frame.captured_at)
        if len(self._images) < self.segment_frames + 1:
            return None
        # the frame just past the segment is its last keyframe's; it also starts the next one
        segment = self._segment(len(self._images), final=False)
        self._images = self._images[-1:]
        self._times = self._times[-1:]
        return segment

    def finish(self) -> LiveSegment | None:
        """The feed ended: the rest as a final segment, or None when too short to fit."""
        count = len(self._images)
        if count < self.longest_interval + 1:
            return None
        return self._segment(count, final=True)

    def _segment(self, count: int, *, final: bool) -> LiveSegment:
        frames = count if final else count - 1  # frames the segment's chunks cover
        first_chunk = self.first_frame // self.chunk_frames
        segment = LiveSegment(
            index=self.index,
            first_chunk=first_chunk,
            end_chunk=first_chunk + -(-frames // self.chunk_frames),
            chunk_frames=self.chunk_frames,
            total_frames=self.first_frame + count,
            frames=np.stack(self._images[:count]),
            captured_at=tuple(self._times[:count]),
            final=final,
        )
        self.index += 1
        self.first_frame += frames
        return segment
