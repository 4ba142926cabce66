"""Small valid prompt data for tests and benchmarks: seeded keyframes and the chunks of a level.

Shipped with the package (as aiohttp ships ``test_utils``) so that benchmarks and operator
scripts build chunks the way tests do without importing ``tests/``. Chunks are cut by the
ladder's own rule (``prompts.ladder.split_into_chunks``), so every fixture stays a valid stream.
"""

from __future__ import annotations

import numpy as np

from prompts.chunk import PromptChunk
from prompts.keyframe import Keyframe, keyframe_positions
from prompts.ladder import split_into_chunks
from prompts.manifest import StreamInfo
from prompts.quant import quantize_tensor
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

FIXTURE_FPS = 30.0  # the fixtures' streams: frame rate and size matter to no chunk
FIXTURE_SIZE = 64


def random_keyframe(
    frame: int, rank: int = 2, seed: int = 0, tokens: int = CONTEXT_TOKENS, dim: int = CONTEXT_DIM
) -> Keyframe:
    """A keyframe at ``frame`` with quantised normal factors from ``RandomState(seed + frame)``."""
    rng = np.random.RandomState(seed + frame)
    return Keyframe(
        frame=frame,
        u=quantize_tensor(rng.randn(tokens, rank).astype(np.float32)),
        v=quantize_tensor(rng.randn(rank, dim).astype(np.float32)),
    )


def fixture_stream(generator_id: str, *, frames: int, chunk_frames: int) -> StreamInfo:
    """A stream of ``frames`` frames cut into chunks of ``chunk_frames`` (the rest is fixed)."""
    return StreamInfo(
        fps=FIXTURE_FPS,
        width=FIXTURE_SIZE,
        height=FIXTURE_SIZE,
        frames=frames,
        chunk_frames=chunk_frames,
        generator_id=generator_id,
        generator_name=generator_id.split(":", 1)[0],
    )


def level_chunks(
    generator_id: str,
    *,
    frames: int,
    interval: int,
    chunk_frames: int,
    rank: int = 2,
    level: int = 0,
    seed: int = 0,
) -> list[PromptChunk]:
    """Every chunk of one level: ``random_keyframe`` at each keyframe position, cut as a ladder is."""
    keyframes = [random_keyframe(p, rank, seed) for p in keyframe_positions(frames, interval)]
    stream = fixture_stream(generator_id, frames=frames, chunk_frames=chunk_frames)
    return split_into_chunks(keyframes, stream, level=level, interval=interval)
