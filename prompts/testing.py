"""Small valid prompt data for tests and benchmarks: seeded keyframes, the chunks of a level,
seeded init states, finished ladders on disk, and two inputs a hostile page sends a daemon.

Shipped with the package (as aiohttp ships ``test_utils``) so that benchmarks and operator
scripts build chunks and ladders the way tests do without importing ``tests/``. Chunks are cut
by the ladder's own rule (``prompts.ladder.split_into_chunks``), so every fixture stays a valid
stream; their pictures mean nothing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prompts.chunk import PromptChunk, encode_chunk
from prompts.keyframe import Keyframe, keyframe_positions
from prompts.ladder import Ladder, LadderWriter, split_into_chunks
from prompts.manifest import StreamInfo
from prompts.quant import quantize_tensor
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

FIXTURE_FPS = 30.0  # the fixtures' streams by default: frame rate and size matter to no chunk
FIXTURE_SIZE = 64
GENERATOR_NAME = "tiny"  # the generator name ``write_ladder``'s manifests give
LEVEL_SEED_STEP = 100  # ``write_ladder``: chunk seeds of level n are seed + n * LEVEL_SEED_STEP


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


def fixture_stream(
    generator_id: str,
    *,
    frames: int,
    chunk_frames: int,
    fps: float = FIXTURE_FPS,
    size: int = FIXTURE_SIZE,
    generator_name: str | None = None,
) -> StreamInfo:
    """A stream of ``frames`` frames cut into chunks of ``chunk_frames``; its generator is named
    after ``generator_id``'s family unless ``generator_name`` is given."""
    return StreamInfo(
        fps=fps,
        width=size,
        height=size,
        frames=frames,
        chunk_frames=chunk_frames,
        generator_id=generator_id,
        generator_name=generator_id.split(":", 1)[0] if generator_name is None else generator_name,
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
    """Writes a finished ladder of ``levels`` (name, rank, interval) of ``level_chunks`` through
    ``LadderWriter``, one quality dict per level."""
    stream = fixture_stream(
        generator_id, frames=frames, chunk_frames=chunk_frames, fps=fps, size=size,
        generator_name=GENERATOR_NAME,
    )  # fmt: skip
    writer = LadderWriter(path, stream, levels)
    writer.write_init_state(seeded_latent(size, init_seed))
    chunks = [
        level_chunks(
            generator_id,
            frames=frames,
            interval=interval,
            chunk_frames=chunk_frames,
            rank=rank,
            level=level_id,
            seed=seed + LEVEL_SEED_STEP * level_id,
        )
        for level_id, (_, rank, interval) in enumerate(levels)
    ]
    for index in range(stream.chunk_count):
        for level_id in range(len(levels)):
            quality = None if qualities is None else qualities[level_id]
            writer.append_chunk(level_id, chunks[level_id][index], quality=quality)
    writer.finish()
    return Ladder(path)


def one_group_chunk(generator_id: str, frames: int, rank: int = 1) -> bytes:
    """Chunk 0 with keyframes only at its two ends: one generation group of ``frames`` (a few
    hundred bytes that make the daemon generate every frame of it)."""
    keyframes = (random_keyframe(0, rank), random_keyframe(frames, rank))
    return encode_chunk(PromptChunk(generator_id, 0, 0, 0, frames, frames, rank, keyframes))


def inflating_init_state(
    shape: tuple[int, ...] = (1, 4, 8, 8), inflated: int = 50 * 2**20
) -> bytes:
    """An init state whose valid header and checksum front a payload that inflates to
    ``inflated`` bytes, far past what ``shape`` needs (a deflate bomb: 50 MiB in ~50 KB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(bytes(inflated)) + compressor.flush()
    body = b"PRIS" + bytes([1, 0, len(shape), 0]) + struct.pack(f"<{len(shape)}I", *shape)
    body += struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))
