"""The live ladder on disk: fitted segments and gaps appended per level in chunk order, the
stream grown to what is published, the DVR window slid, and the ladder finished at the end of
the feed. Every write goes through ``prompts.ladder.LadderWriter`` (atomic, chunk before
manifest; files leave the window after a grace period).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from authoring.levels import LevelSpec
from authoring.live.cutter import LiveSegment
from authoring.segments import SegmentResult
from common.errors import UserError
from prompts.ladder import MANIFEST_NAME, LadderWriter
from prompts.manifest import Manifest, StreamInfo
from prompts.stream_model import CHUNK_RESET, NOISE_SEED, PREV_LATENT_WEIGHT, LatentGeometry


class ChannelExistsError(UserError, FileExistsError):
    """The channel's directory already holds a ladder."""


@dataclass(frozen=True)
class Publication:
    """One chunk of one level made public (or published as a gap)."""

    chunk: int
    level: str
    gap: bool
    latency_s: float  # capture of the chunk's first frame -> publication
    wait_s: float  # the segment's last frame captured -> publication (fitting + queueing)
    psnr: float | None


def window_chunks_for(minutes: float | None, chunk_seconds: float) -> int | None:
    """Chunks a window of ``minutes`` keeps (None or <= 0: keep everything)."""
    if not minutes or minutes <= 0:
        return None
    return max(1, math.ceil(minutes * 60 / chunk_seconds))


class LivePublisher:
    """Owns the ladder directory of one live channel."""

    def __init__(
        self,
        path: Path,
        *,
        fps: float,
        size: int,
        chunk_frames: int,
        levels: Sequence[LevelSpec],
        generator_id: str,
        generator_name: str,
        latent: LatentGeometry,
        init_latent: np.ndarray,
        window_chunks: int | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (path / MANIFEST_NAME).exists():
            raise ChannelExistsError(
                f"{path} already holds a ladder; remove it or choose another --channel"
            )
        self.path = path
        self.levels = list(levels)
        self.window_chunks = window_chunks
        self.clock = clock
        stream = StreamInfo(
            fps=fps, width=size, height=size, frames=1, chunk_frames=chunk_frames,
            generator_id=generator_id, generator_name=generator_name, noise_seed=NOISE_SEED,
            prev_latent_weight=PREV_LATENT_WEIGHT, prev_latent_rule=CHUNK_RESET, live=True,
            latent=latent,
        )  # fmt: skip
        self.writer = LadderWriter(path, stream, [(lv.name, lv.rank, lv.interval) for lv in levels])
        self.writer.write_init_state(init_latent)

    @property
    def manifest(self) -> Manifest:
        return self.writer.manifest

    def publish(
        self, level_id: int, segment: LiveSegment, result: SegmentResult | None
    ) -> list[Publication]:
        """Append one level's chunks of ``segment``: the fitted ones, or gaps when ``result`` is None."""
        covered = segment.total_frames if segment.final else segment.total_frames - 1
        if covered > self.writer.manifest.stream.frames:
            self.writer.grow(covered)
        published = []
        level = self.levels[level_id]
        for position, index in enumerate(range(segment.first_chunk, segment.end_chunk)):
            psnr = None
            if result is None:
                self.writer.append_gap(level_id, index)
            else:
                quality = result.quality[position]
                self.writer.append_chunk(level_id, result.chunks[position], quality)
                psnr = None if quality is None else quality.get("psnr")
            now = self.clock()
            published.append(
                Publication(
                    chunk=index,
                    level=level.name,
                    gap=result is None,
                    latency_s=now - segment.chunk_captured_at(index),
                    wait_s=now - segment.ready_at,
                    psnr=psnr,
                )  # fmt: skip
            )
        self._slide()
        return published

    def _slide(self) -> None:
        manifest = self.writer.manifest
        if self.window_chunks is not None:
            first = manifest.chunk_count - self.window_chunks
            if first > manifest.window_start:
                self.writer.slide_window(first)

    def finish(self) -> Manifest:
        """The feed ended: the ladder becomes a finished one (its window stays as it is)."""
        return self.writer.finish()
