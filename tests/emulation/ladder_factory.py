"""A small real ladder for full-mode tests: seeded keyframes, the tiny generator's identity.

The chunks are real prompt chunks (encoded by ``prompts.chunk`` through ``LadderWriter``) that the
daemon's tiny generator decodes; their pictures mean nothing. Per-chunk PSNR values are set per
level (assumed, since nothing was fitted) so the ABRs have a quality to optimise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prompts.chunk import PromptChunk
from prompts.keyframe import Keyframe
from prompts.ladder import LadderWriter
from prompts.manifest import StreamInfo
from prompts.quant import quantize_tensor

FPS = 15.0  # low frame rate (frames still under 0.1 s): the tiny generator on a busy CPU is slow
SIZE = 64  # small frames keep CPU generation fast
CHUNK_FRAMES = 15  # 1 s chunks
LEVELS = (("r1n15", 1, 15, 24.0), ("r4n5", 4, 5, 28.0), ("r16n3", 16, 3, 31.0))


def _keyframe(frame: int, rank: int, rng: np.random.Generator) -> Keyframe:
    return Keyframe(
        frame=frame,
        u=quantize_tensor(rng.standard_normal((77, rank)).astype(np.float32)),
        v=quantize_tensor(rng.standard_normal((rank, 1024)).astype(np.float32)),
    )


def build_ladder(path: Path, generator_id: str, chunks: int = 20, seed: int = 0) -> Path:
    """Writes a 3-level ladder of ``chunks`` 1-second chunks to ``path``."""
    frames = chunks * CHUNK_FRAMES
    stream = StreamInfo(
        fps=FPS,
        width=SIZE,
        height=SIZE,
        frames=frames,
        chunk_frames=CHUNK_FRAMES,
        generator_id=generator_id,
        generator_name="tiny",
    )
    writer = LadderWriter(
        path, stream, [(name, rank, interval) for name, rank, interval, _ in LEVELS]
    )
    rng = np.random.default_rng(seed)
    writer.write_init_state(rng.standard_normal((1, 4, SIZE // 8, SIZE // 8)).astype(np.float32))
    for level_id, (_, rank, interval, psnr) in enumerate(LEVELS):
        positions = list(range(0, frames, interval))
        if positions[-1] != frames - 1:
            positions.append(frames - 1)
        for index in range(chunks):
            start, end = stream.chunk_range(index)
            held = [
                p for p in positions if start < p <= start + CHUNK_FRAMES or (index == 0 and p == 0)
            ]
            chunk = PromptChunk(
                generator_id=generator_id,
                level=level_id,
                index=index,
                frame_start=start,
                frame_end=end,
                interval=interval,
                rank=rank,
                keyframes=tuple(_keyframe(p, rank, rng) for p in held),
            )
            writer.append_chunk(level_id, chunk, quality={"psnr": psnr})
    writer.finish()
    return path
