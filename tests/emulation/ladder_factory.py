"""A small real ladder for full-mode tests: seeded keyframes, the tiny generator's identity.

The chunks are real prompt chunks that the daemon's tiny generator decodes; their pictures mean
nothing. Per-chunk PSNR values are set per level (assumed, since nothing was fitted) so the ABRs
have a quality to optimise.
"""

from __future__ import annotations

from pathlib import Path

from prompts.testing import write_ladder

FPS = 15.0  # low frame rate (frames still under 0.1 s): the tiny generator on a busy CPU is slow
SIZE = 64  # small frames keep CPU generation fast
CHUNK_FRAMES = 15  # 1 s chunks
LEVELS = (("r1n15", 1, 15, 24.0), ("r4n5", 4, 5, 28.0), ("r16n3", 16, 3, 31.0))


def build_ladder(path: Path, generator_id: str, chunks: int = 20, seed: int = 0) -> Path:
    """Writes a 3-level ladder of ``chunks`` 1-second chunks to ``path``."""
    write_ladder(
        path,
        generator_id,
        levels=[(name, rank, interval) for name, rank, interval, _ in LEVELS],
        frames=chunks * CHUNK_FRAMES,
        fps=FPS,
        size=SIZE,
        chunk_frames=CHUNK_FRAMES,
        seed=seed,
        init_seed=seed,
        qualities=[{"psnr": psnr} for *_, psnr in LEVELS],
    )
    return path
