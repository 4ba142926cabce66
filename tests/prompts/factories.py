"""Small seeded keyframes and chunks for tests (no ../shared needed)."""

from __future__ import annotations

import numpy as np

from prompts.chunk import PromptChunk
from prompts.keyframe import Keyframe
from prompts.quant import quantize_tensor


def random_keyframe(
    frame: int, rank: int = 2, seed: int = 0, tokens: int = 77, dim: int = 1024
) -> Keyframe:
    rng = np.random.RandomState(seed + frame)
    return Keyframe(
        frame=frame,
        u=quantize_tensor(rng.randn(tokens, rank).astype(np.float32)),
        v=quantize_tensor(rng.randn(rank, dim).astype(np.float32)),
    )


def chunk_of(
    index: int,
    *,
    chunk_frames: int = 20,
    interval: int = 10,
    rank: int = 2,
    frames: int = 61,
    level: int = 0,
    generator_id: str = "test:0",
    seed: int = 0,
) -> PromptChunk:
    """Chunk ``index`` of a stream cut by the rule of docs/architecture.md."""
    start, end = index * chunk_frames, min((index + 1) * chunk_frames, frames)
    positions = list(range(0, frames, interval))
    if positions[-1] != frames - 1:
        positions.append(frames - 1)
    held = [p for p in positions if start < p <= start + chunk_frames or (index == 0 and p == 0)]
    return PromptChunk(
        generator_id=generator_id,
        level=level,
        index=index,
        frame_start=start,
        frame_end=end,
        interval=interval,
        rank=rank,
        keyframes=tuple(random_keyframe(p, rank, seed) for p in held),
    )
