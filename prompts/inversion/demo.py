"""The fast path for ``promptus demo``: a small ladder from an in-memory clip in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DEMO_LEVELS = "r1n10,r2n10,r4n10"  # three levels, about 4 / 9 / 18 kbps raw at 30 fps
PLANTED_DRIFT = 0.08  # std of the factor change between keyframes of a planted clip


def planted_clip(
    generator: Any,
    size: int,
    frames: int,
    interval: int = 10,
    rank: int = 4,
    seed: int = 0,
    chunk_frames: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A clip the generator itself makes from a smooth random prompt path, and its init latent.

    Unlike natural or drawn pictures, the tiny generators can reproduce such a clip, so a demo
    or benchmark built on it shows inversion working (about 30 dB) rather than failing (7 dB).
    """
    from prompts.keyframe import Keyframe, keyframe_positions
    from prompts.ladder import split_into_chunks
    from prompts.manifest import StreamInfo
    from prompts.quant import quantize_tensor

    rng = np.random.default_rng(seed)
    u, v = rng.random((77, rank), np.float32), rng.random((rank, 1024), np.float32)
    du = rng.normal(0, PLANTED_DRIFT, (77, rank)).astype(np.float32)
    dv = rng.normal(0, PLANTED_DRIFT, (rank, 1024)).astype(np.float32)
    keyframes = tuple(
        Keyframe(
            p,
            quantize_tensor(u + np.float32(np.sin(i / 2)) * du),
            quantize_tensor(v + np.float32(np.sin(i / 2)) * dv),
        )
        for i, p in enumerate(keyframe_positions(frames, interval))
    )
    init = np.zeros((1, 4, size // 8, size // 8), np.float32)
    # Chunk boundaries reset the previous-latent term; a ladder cut the same way fits exactly.
    span = chunk_frames or -(-frames // interval) * interval
    stream = StreamInfo(
        fps=30.0, width=size, height=size, frames=frames, chunk_frames=span,
        generator_id=generator.generator_id, generator_name=generator.name,
    )  # fmt: skip
    decoder = generator.open_stream(width=size, height=size, init_latent=init)
    chunks = split_into_chunks(keyframes, stream, level=0, interval=interval)
    return np.concatenate([decoder.decode_chunk(c) for c in chunks]), init


def build_demo_ladder(
    frames: np.ndarray,
    out_dir: str | Path,
    *,
    fps: float = 30.0,
    generator: str = "tiny",
    taesd: str | Path | None = None,
    levels: str = DEMO_LEVELS,
    chunk_seconds: float = 1.0,
    progress: bool = False,
) -> Path:
    """Fit ``levels`` to ``uint8 [T, H, W, 3]`` frames (square, H a multiple of 64) with the
    ``demo`` preset and write a complete ladder into ``out_dir`` (replacing an older one there).
    """
    import shutil

    from engines import load_generator
    from prompts.inversion.build import FitOptions, build_ladder
    from prompts.inversion.levels import parse_levels
    from prompts.inversion.presets import get_preset
    from prompts.inversion.source import SourceVideo
    from prompts.ladder import MANIFEST_NAME

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[1] != frames.shape[2]:
        raise ValueError(f"demo frames must be uint8 [T, S, S, 3], got {frames.shape}")
    out = Path(out_dir)
    if (out / MANIFEST_NAME).exists():
        shutil.rmtree(out)
    gen = load_generator(generator, taesd=taesd, device="cpu")
    build_ladder(
        SourceVideo(frames, float(fps)), out, generator=gen, levels=parse_levels(levels),
        options=FitOptions(preset=get_preset("demo")), chunk_seconds=chunk_seconds, progress=progress,
    )  # fmt: skip
    return out
