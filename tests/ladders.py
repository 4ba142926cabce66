"""Small finished ladders of seeded random prompts for tests that need a real ladder on disk.

The chunks are real prompt chunks (``tests.prompts.factories.chunk_of``, cut by the rule of
docs/architecture.md) written through ``prompts.ladder.LadderWriter``; their pictures mean nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prompts.ladder import Ladder, LadderWriter
from prompts.manifest import StreamInfo
from tests.prompts.factories import chunk_of

GENERATOR_NAME = "tiny"
LEVEL_SEED_STEP = 100  # chunk seeds of level n are seed + n * LEVEL_SEED_STEP: levels differ


def seeded_latent(size: int, seed: int) -> np.ndarray:
    """A 1x4x(size/8)x(size/8) float32 init state drawn from ``seed``."""
    return (
        np.random.RandomState(seed).standard_normal((1, 4, size // 8, size // 8)).astype(np.float32)
    )


def write_ladder(
    path: Path,
    generator_id: str,
    *,
    levels: Sequence[tuple[str, int, int]],
    frames: int,
    fps: float,
    size: int,
    chunk_frames: int,
    seed: int = 0,
    init_seed: int = 0,
    qualities: Sequence[dict[str, float]] | None = None,
) -> Ladder:
    """Writes a finished ladder of ``levels`` (name, rank, interval), one quality dict per level."""
    stream = StreamInfo(
        fps=fps,
        width=size,
        height=size,
        frames=frames,
        chunk_frames=chunk_frames,
        generator_id=generator_id,
        generator_name=GENERATOR_NAME,
    )
    writer = LadderWriter(path, stream, levels)
    writer.write_init_state(seeded_latent(size, init_seed))
    for index in range(stream.chunk_count):
        for level_id, (_, rank, interval) in enumerate(levels):
            chunk = chunk_of(
                index,
                chunk_frames=chunk_frames,
                interval=interval,
                rank=rank,
                frames=frames,
                level=level_id,
                generator_id=generator_id,
                seed=seed + LEVEL_SEED_STEP * level_id,
            )
            quality = None if qualities is None else qualities[level_id]
            writer.append_chunk(level_id, chunk, quality=quality)
    writer.finish()
    return Ladder(path)
