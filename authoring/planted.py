"""Planted clips: frames a generator itself makes from a known prompt path (recovery tests and benchmarks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from prompts.stream_model import CHUNK_RESET, CONTEXT_DIM, CONTEXT_TOKENS

PLANTED_DRIFT = 0.08  # std of the factor change between keyframes of a planted clip


def planted_keyframes(
    frames: int, interval: int = 10, rank: int = 4, seed: int = 0, drift: float = PLANTED_DRIFT
) -> tuple[Any, ...]:
    """Keyframes of a smooth random prompt path: factors uniform in [0, 1) plus a sine drift
    whose direction has standard deviation ``drift``."""
    from prompts.keyframe import Keyframe, keyframe_positions
    from prompts.quant import quantize_tensor

    rng = np.random.default_rng(seed)
    u, v = (
        rng.random((CONTEXT_TOKENS, rank), np.float32),
        rng.random((rank, CONTEXT_DIM), np.float32),
    )
    du = rng.normal(0, drift, (CONTEXT_TOKENS, rank)).astype(np.float32)
    dv = rng.normal(0, drift, (rank, CONTEXT_DIM)).astype(np.float32)
    return tuple(
        Keyframe(
            p,
            quantize_tensor(u + np.float32(np.sin(i / 2)) * du),
            quantize_tensor(v + np.float32(np.sin(i / 2)) * dv),
        )
        for i, p in enumerate(keyframe_positions(frames, interval))
    )


def planted_clip(
    generator: Any,
    size: int,
    frames: int,
    interval: int = 10,
    rank: int = 4,
    seed: int = 0,
    chunk_frames: int | None = None,
    prev_latent_rule: str = CHUNK_RESET,
    drift: float = PLANTED_DRIFT,
) -> tuple[np.ndarray, np.ndarray]:
    """A clip the generator itself makes from a smooth random prompt path, and its init latent.

    Unlike natural or drawn pictures, the tiny generators can reproduce such a clip, so a demo
    or benchmark built on it shows inversion working (about 30 dB) rather than failing (7 dB).
    """
    from prompts.ladder import split_into_chunks
    from prompts.manifest import StreamInfo

    keyframes = planted_keyframes(frames, interval, rank, seed, drift)
    init = np.zeros(generator.latent_geometry.shape(size, size), np.float32)
    # Chunk boundaries reset the previous-latent term; a ladder cut the same way fits exactly.
    span = chunk_frames or -(-frames // interval) * interval
    stream = StreamInfo(
        fps=30.0, width=size, height=size, frames=frames, chunk_frames=span,
        generator_id=generator.generator_id, generator_name=generator.name,
        prev_latent_rule=prev_latent_rule, latent=generator.latent_geometry,
    )  # fmt: skip
    decoder = generator.open_stream(
        width=size, height=size, init_latent=init, prev_latent_rule=prev_latent_rule
    )
    chunks = split_into_chunks(keyframes, stream, level=0, interval=interval)
    return np.concatenate([decoder.decode_chunk(c) for c in chunks]), init
