"""The fast path for ``promptus demo``: a small ladder from an in-memory clip in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_LEVELS = "r1n10,r2n10,r4n10"  # three levels, about 4 / 9 / 18 kbps raw at 30 fps


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
