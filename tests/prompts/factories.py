"""Small seeded keyframes and chunks for tests (no ../shared needed): ``prompts.testing``'s, by index."""

from __future__ import annotations

from prompts.chunk import PromptChunk
from prompts.testing import level_chunks, random_keyframe

__all__ = ["chunk_of", "random_keyframe"]


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
    chunks = level_chunks(
        generator_id,
        frames=frames,
        interval=interval,
        chunk_frames=chunk_frames,
        rank=rank,
        level=level,
        seed=seed,
    )
    return chunks[index]
