"""Closed segments: a level cut at chunk boundaries into stretches that are fitted independently.

A segment covers whole chunks ``[first_chunk, end_chunk)`` of one level of one title. Like a closed
GOP it starts with its own cold keyframe at its first frame, so no segment waits for another:
segments, levels and titles are fitted in parallel, alone or several stacked in one task
(``authoring.segment_batch``). The segment's first chunk (when it is not chunk 0) holds that
keyframe and is written as a *closed* chunk (format version 2, ``prompts.chunk``): it needs no
switch prefix. The segment's last keyframe sits on the next segment's first frame, so its fit sees
the frames ``[first_frame, end_frame]`` (one past its chunks, where that frame exists); that frame
starts a chunk, so its UNet input is the init latent in both fits (``chunk-reset``) and the stream
model holds across the seam: a cold decode of every chunk equals a sequential decode.

Inside a segment the fit is the per-level fit of ``authoring.build.fit_level`` on the segment's
frames (warm starts, checkpoints after every keyframe, resume); this module only cuts, shifts and
scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from authoring.levels import LevelSpec
from prompts.chunk import PromptChunk
from prompts.keyframe import Keyframe
from prompts.ladder import split_into_chunks
from prompts.manifest import StreamInfo

OPEN = 0  # ``segment_chunks`` of an open level: one segment, the warm-started sequence of today
# Closed-segment length: seams cost ~2% bytes, ~5% GPU (docs/authoring.md).
DEFAULT_SEGMENT_SECONDS = 30.0


@dataclass(frozen=True)
class Segment:
    """Chunks ``[first_chunk, end_chunk)`` of one level of one title, fitted as one task."""

    title: str
    level: LevelSpec
    level_id: int  # the level's position in the ladder (ascending bitrate)
    index: int  # segment number within the level
    first_chunk: int
    end_chunk: int  # exclusive
    chunk_frames: int
    total_frames: int  # frames of the whole title

    @property
    def first_frame(self) -> int:
        return self.first_chunk * self.chunk_frames

    @property
    def end_frame(self) -> int:
        """One past the last frame of the segment's chunks."""
        return min(self.end_chunk * self.chunk_frames, self.total_frames)

    @property
    def fit_end(self) -> int:
        """One past the last frame the fit sees: the next segment's first frame is included."""
        return min(self.end_frame + 1, self.total_frames)

    @property
    def frame_count(self) -> int:
        """Frames the segment's chunks cover."""
        return self.end_frame - self.first_frame

    @property
    def name(self) -> str:
        """``title/level/segment``: names the task, its checkpoint and its errors."""
        return f"{self.title}/{self.level.name}/{self.index}"

    def frames_of(self, title_frames: np.ndarray) -> np.ndarray:
        """The frames this segment's fit sees, out of the whole title's."""
        return title_frames[self.first_frame : self.fit_end]


@dataclass(frozen=True)
class SegmentResult:
    """A fitted segment: its chunks (global indices) and per-chunk quality."""

    segment: Segment
    chunks: tuple[PromptChunk, ...]
    quality: tuple[dict[str, float] | None, ...]  # per chunk: psnr, ssim (None: not measured)
    iterations: int  # optimiser iterations over every keyframe
    fit_seconds: float  # wall time of the fit and the scoring


def segment_chunks_for(seconds: float, fps: float, chunk_frames: int) -> int:
    """Chunks per segment for ``seconds`` of video (at least one); ``OPEN`` for ``seconds <= 0``."""
    if seconds <= 0:
        return OPEN
    return max(1, round(seconds * fps / chunk_frames))


def cut_segments(
    title: str,
    total_frames: int,
    chunk_frames: int,
    levels: Sequence[LevelSpec],
    segment_chunks: int,
) -> list[Segment]:
    """Every segment of every level (``levels`` in ladder order), level by level.

    ``segment_chunks`` chunks per segment (``OPEN``: one segment per level). A last segment that
    would cover no more than one interval joins the one before it (a fit needs a whole interval).
    """
    chunk_count = -(-total_frames // chunk_frames)
    step = segment_chunks if segment_chunks > 0 else chunk_count
    segments = []
    for level_id, level in enumerate(levels):
        bounds = list(range(0, chunk_count, step)) + [chunk_count]
        if len(bounds) > 2:
            tail = total_frames - bounds[-2] * chunk_frames
            if 1 < tail <= level.interval:
                del bounds[-2]
        segments += [
            Segment(title, level, level_id, i, first, end, chunk_frames, total_frames)
            for i, (first, end) in enumerate(zip(bounds, bounds[1:], strict=False))
        ]
    return segments


def segment_chunks(
    segment: Segment, keyframes: Sequence[Keyframe], generator_id: str
) -> list[PromptChunk]:
    """Cut a fitted segment's keyframes (global positions) into its chunks, by the rule of
    ``prompts.ladder.split_into_chunks``: the segment's first chunk also holds the keyframe at
    its first frame, which makes it closed."""
    # The chunk grid of the whole title; split_into_chunks reads only it and the generator id.
    grid = StreamInfo(
        fps=0.0, width=0, height=0, frames=segment.total_frames,
        chunk_frames=segment.chunk_frames, generator_id=generator_id, generator_name="",
    )  # fmt: skip
    return split_into_chunks(
        keyframes, grid, level=segment.level_id, interval=segment.level.interval,
        first_chunk=segment.first_chunk, end_chunk=segment.end_chunk,
    )  # fmt: skip


def check_segment_options(options: Any) -> None:
    """Refuse fit options that closed segments cannot honour (``authoring.build.BuildError``):
    segments restart from the title's TAESD initial latent under the chunk-reset rule, while the
    ``paper`` preset keeps the release's chained rule and SD-VAE latent."""
    from authoring.build import BuildError
    from prompts.stream_model import CHUNK_RESET

    if options.rule != CHUNK_RESET or options.preset.init_latent != "taesd":
        raise BuildError(
            f"preset {options.preset.name} (previous-latent rule {options.rule}, initial latent "
            f"{options.preset.init_latent}) cannot be fitted in closed segments: fit it without "
            "--cluster/--segment-seconds"
        )


def fit_segment(
    frames: np.ndarray,
    segment: Segment,
    generator: Any,
    options: Any,
    init_latent: np.ndarray,
    *,
    checkpoint_dir: Path | None = None,
    measure_quality: bool = True,
    measure_vmaf: bool = False,
    wrap_optimiser: Callable[[Any], Any] | None = None,
) -> SegmentResult:
    """Fit one segment and cut it into chunks.

    ``frames`` are the frames the segment's fit sees (``segment.frames_of(title_frames)``),
    ``options`` an ``authoring.build.FitOptions``, ``init_latent`` the title's initial latent.
    With ``checkpoint_dir`` the fit checkpoints after every keyframe there and, when a
    checkpoint of the same settings exists (a task killed midway and retried, on any node that
    sees the directory), continues from it. ``wrap_optimiser`` goes to ``fit_level`` (how
    ``authoring.segment_batch.fit_segments`` stacks several segments' steps).
    """
    from authoring.build import decode_cold, fit_level, latent_targets_for
    from authoring.metrics import quality
    from authoring.source import SourceVideo
    from prompts.stream_model import CHUNK_RESET, NOISE_SEED, PREV_LATENT_WEIGHT

    check_segment_options(options)
    started = time.perf_counter()
    expected = segment.fit_end - segment.first_frame
    if len(frames) != expected:
        raise ValueError(f"segment {segment.name} needs {expected} frames, got {len(frames)}")
    latent_targets = latent_targets_for(generator, frames, options.preset)
    fitted = fit_level(
        generator, SourceVideo(frames, 0.0), init_latent, segment.level, segment.chunk_frames,
        options, latent_targets=latent_targets, out=checkpoint_dir,
        resume=checkpoint_dir is not None, progress=False, wrap_optimiser=wrap_optimiser,
    )  # fmt: skip
    offset = segment.first_frame
    keyframes = [Keyframe(k.frame + offset, k.u, k.v) for k in fitted.state.keyframes]
    chunks = segment_chunks(segment, keyframes, generator.generator_id)
    scores: list[dict[str, float] | None] = []
    decoder = None
    for position, chunk in enumerate(chunks):
        if not measure_quality:
            scores.append(None)
            continue
        start, end = chunk.frame_start - offset, chunk.frame_end - offset
        if fitted.known[start:end].all():  # regenerated by the fit exactly as a decoder does
            decoded = fitted.frames[start:end]
        else:  # restored from a checkpoint: decode as a viewer joining there would
            if decoder is None:
                height, width = frames.shape[1:3]
                decoder = generator.open_stream(
                    width=width, height=height, noise_seed=NOISE_SEED,
                    prev_latent_weight=PREV_LATENT_WEIGHT, prev_latent_rule=CHUNK_RESET,
                    init_latent=init_latent,
                )  # fmt: skip
            decoded = decode_cold(decoder, chunk, chunks[position - 1] if position else None)
        vmaf_device = str(generator.device) if measure_vmaf else None
        scores.append(quality(decoded, frames[start:end], vmaf_device))
    return SegmentResult(
        segment=segment,
        chunks=tuple(chunks),
        quality=tuple(scores),
        iterations=sum(s.iterations for s in fitted.state.stats),
        fit_seconds=time.perf_counter() - started,
    )
