"""A ladder directory on disk: reading it, and writing it safely while it is being served.

Layout: ``manifest.json``, ``init.bin`` and ``<level name>/<index:05d>.chunk``. Every file
is written atomically, and a chunk file lands before the manifest that announces it, so a
server that re-reads the manifest of a live ladder never announces a missing chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes, atomic_write_json
from prompts.chunk import PromptChunk, encode_chunk
from prompts.init_state import encode_init_state, parse_init_state
from prompts.keyframe import Keyframe
from prompts.manifest import ChunkInfo, LevelInfo, Manifest, StreamInfo, load_manifest

MANIFEST_NAME = "manifest.json"
INIT_STATE_NAME = "init.bin"


def chunk_relpath(level_name: str, index: int) -> str:
    return f"{level_name}/{index:05d}.chunk"


def default_chunk_frames(interval: int, fps: float, seconds: float = 2.0) -> int:
    """The multiple of the interval closest to ``seconds`` of video (at least one interval)."""
    return max(interval, round(seconds * fps / interval) * interval)


def split_into_chunks(
    keyframes: tuple[Keyframe, ...], stream: StreamInfo, *, level: int, interval: int
) -> list[PromptChunk]:
    """Cut a level's keyframes into chunks by the rule of docs/architecture.md."""
    chunks = []
    for index in range(stream.chunk_count):
        start, end = stream.chunk_range(index)
        held = tuple(
            k
            for k in keyframes
            if start < k.frame <= start + stream.chunk_frames or (index == 0 and k.frame == 0)
        )
        chunks.append(
            PromptChunk(
                generator_id=stream.generator_id,
                level=level,
                index=index,
                frame_start=start,
                frame_end=end,
                interval=interval,
                rank=keyframes[0].rank,
                keyframes=held,
            )
        )
    return chunks


class Ladder:
    """Read access to a ladder directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest: Manifest = load_manifest(self.path / MANIFEST_NAME)

    def reload(self) -> Manifest:
        self.manifest = load_manifest(self.path / MANIFEST_NAME)
        return self.manifest

    def chunk_path(self, level: int | str, index: int) -> Path:
        return self.path / chunk_relpath(self.manifest.level(level).name, index)

    def chunk_bytes(self, level: int | str, index: int) -> bytes:
        return self.chunk_path(level, index).read_bytes()

    def init_state_bytes(self) -> bytes:
        return (self.path / self.manifest.init_state["file"]).read_bytes()

    def init_state(self) -> np.ndarray:
        return parse_init_state(self.init_state_bytes())


class LadderWriter:
    """Writes a ladder level by level and chunk by chunk, keeping the manifest valid throughout."""

    def __init__(
        self,
        path: str | Path,
        stream: StreamInfo,
        levels: Sequence[tuple[str, int, int]],
    ) -> None:
        """``levels`` lists (name, rank, interval) in ascending bitrate order."""
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        infos = tuple(
            LevelInfo(id=i, name=name, rank=rank, interval=interval, kbps=0.0)
            for i, (name, rank, interval) in enumerate(levels)
        )
        self.manifest = Manifest(stream=replace(stream, live=True), levels=infos)
        Manifest.from_json(self._document_with_placeholder())  # validate names and intervals now

    @classmethod
    def resume(cls, path: str | Path) -> LadderWriter:
        """Continue writing an existing ladder (for example after an interrupted run)."""
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer.manifest = load_manifest(writer.path / MANIFEST_NAME)
        return writer

    def _document_with_placeholder(self) -> dict:
        document = self.manifest.to_json()
        document["init_state"] = document["init_state"] or {"file": INIT_STATE_NAME}
        return document

    def write_init_state(self, latent: np.ndarray, *, dtype: str = "float32") -> None:
        data = encode_init_state(latent, dtype=dtype)
        atomic_write_bytes(self.path / INIT_STATE_NAME, data)
        info = {
            "file": INIT_STATE_NAME,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.manifest = replace(self.manifest, init_state=info)
        self._write_manifest()

    def append_chunk(
        self, level_id: int, chunk: PromptChunk, quality: dict[str, float] | None = None
    ) -> int:
        """Write the next chunk of a level; returns its size in bytes."""
        level = self.manifest.levels[level_id]
        if chunk.index != len(level.chunks):
            raise ValueError(
                f"level {level.name}: expected chunk {len(level.chunks)}, got {chunk.index}"
            )
        if (chunk.rank, chunk.interval, chunk.level) != (level.rank, level.interval, level_id):
            raise ValueError(f"chunk does not belong to level {level.name}")
        if (chunk.frame_start, chunk.frame_end) != self.manifest.stream.chunk_range(chunk.index):
            raise ValueError(f"chunk {chunk.index} covers the wrong frames")
        data = encode_chunk(chunk)
        atomic_write_bytes(self.path / chunk_relpath(level.name, chunk.index), data)
        quality = quality or {}
        info = ChunkInfo(
            index=chunk.index,
            bytes=len(data),
            keyframes=len(chunk.keyframes),
            psnr=quality.get("psnr"),
            ssim=quality.get("ssim"),
            vmaf=quality.get("vmaf"),
        )
        self.manifest = self.manifest.with_level(
            self._with_rate(replace(level, chunks=level.chunks + (info,)))
        )
        self._write_manifest()
        return len(data)

    def finish(self) -> Manifest:
        """Mark the ladder complete (no longer live)."""
        self.manifest = replace(self.manifest, stream=replace(self.manifest.stream, live=False))
        self._write_manifest()
        return self.manifest

    def _with_rate(self, level: LevelInfo) -> LevelInfo:
        stream = self.manifest.stream
        frames = sum(
            stream.chunk_range(c.index)[1] - stream.chunk_range(c.index)[0] for c in level.chunks
        )
        seconds = frames / stream.fps
        kbps = sum(c.bytes for c in level.chunks) * 8 / 1000 / seconds if seconds else 0.0
        return replace(level, kbps=kbps)

    def _write_manifest(self) -> None:
        published = min(len(level.chunks) for level in self.manifest.levels)
        self.manifest = replace(self.manifest, chunk_count=published)
        document = self._document_with_placeholder()
        Manifest.from_json(document)  # never publish an invalid manifest
        atomic_write_json(self.path / MANIFEST_NAME, document)
