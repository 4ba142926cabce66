"""Short planted titles on disk (folders of PNG frames) that the tiny generator can fit."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

SIZE = 64
FPS = 10.0  # with --chunk-seconds 1: chunks of 10 frames


def write_title(generator, folder: Path, *, frames: int = 20, seed: int = 0) -> Path:  # type: ignore[no-untyped-def]
    """A planted clip (``authoring.planted``) of ``frames`` frames as PNG files in ``folder``."""
    from authoring.planted import planted_clip

    clip, _ = planted_clip(generator, SIZE, frames, interval=5, rank=2, seed=seed, chunk_frames=10)
    folder.mkdir(parents=True)
    for index, frame in enumerate(clip):
        Image.fromarray(frame).save(folder / f"{index:04d}.png")
    return folder


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path (byte-for-byte ladder comparisons)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
