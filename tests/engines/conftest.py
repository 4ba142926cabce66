"""Fixtures of the engines tests: the tiny generator and seeded prompt chunks of one level."""

from __future__ import annotations

import numpy as np

from prompts.chunk import PromptChunk
from prompts.keyframe import Keyframe, keyframe_positions
from prompts.quant import quantize_tensor
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS, SD_LATENT

TEST_SIZE = 64  # pixels: the smallest stream size; keeps every test fast on two cores


def make_level_chunks(
    generator_id: str,
    *,
    frames: int,
    interval: int,
    chunk_frames: int,
    rank: int = 2,
    level: int = 0,
    seed: int = 0,
) -> list[PromptChunk]:
    """Chunks of one level with random (seeded) keyframes, split as the stream model says."""
    rng = np.random.RandomState(seed)
    keyframes = [
        Keyframe(
            p,
            quantize_tensor(rng.standard_normal((CONTEXT_TOKENS, rank)).astype(np.float32)),
            quantize_tensor(rng.standard_normal((rank, CONTEXT_DIM)).astype(np.float32)),
        )
        for p in keyframe_positions(frames, interval)
    ]
    chunks = []
    for index, start in enumerate(range(0, frames, chunk_frames)):
        end = min(start + chunk_frames, frames)
        held = tuple(
            k
            for k in keyframes
            if start < k.frame <= start + chunk_frames or (index == 0 and k.frame == 0)
        )
        chunks.append(PromptChunk(generator_id, level, index, start, end, interval, rank, held))
    return chunks


def init_latent(size: int = TEST_SIZE, seed: int = 1) -> np.ndarray:
    return (
        np.random.RandomState(seed).standard_normal(SD_LATENT.shape(size, size)).astype(np.float32)
    )
