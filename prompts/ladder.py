"""A ladder directory on disk: reading it, and writing it safely while it is being served.

Layout: ``manifest.json``, ``init.bin`` and ``<level name>/<index:05d>.chunk``. Every file
is written atomically, and a chunk file lands before the manifest that announces it, so a
server that re-reads the manifest of a live ladder never announces a missing chunk. A live
ladder may slide its window: a chunk file is removed only a grace period after the manifest
stopped naming it (viewers that read the older manifest may still ask for it), and the chunk
just before the window stays (it serves the switch prefix of the window's first chunk).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_write_bytes, atomic_write_json
from prompts.chunk import PromptChunk, encode_chunk
from prompts.init_state import encode_init_state, parse_init_state
from prompts.keyframe import Keyframe
from prompts.manifest import (
    ChunkInfo,
    LevelInfo,
    Manifest,
    ManifestError,
    StreamInfo,
    load_manifest,
)

MANIFEST_NAME = "manifest.json"
INIT_STATE_NAME = "init.bin"
RETIRE_GRACE_S = 10.0  # s a chunk file outlives the last manifest that named it


def chunk_relpath(level_name: str, index: int) -> str:
    return f"{level_name}/{index:05d}.chunk"


def default_chunk_frames(interval: int, fps: float, seconds: float = 2.0) -> int:
    """The multiple of the interval closest to ``seconds`` of video (at least one interval)."""
    return max(interval, round(seconds * fps / interval) * interval)


def holds_keyframe(frame: int, start: int, chunk_frames: int, *, first: bool) -> bool:
    """Whether the chunk starting at ``start`` holds the keyframe at ``frame`` (docs/architecture.md):
    frames in ``(start, start + chunk_frames]``, and for the first chunk of a stream or of a closed
    segment (``first``) also ``start``, which makes that chunk closed."""
    return start < frame <= start + chunk_frames or (first and frame == start)


def split_into_chunks(
    keyframes: Sequence[Keyframe],
    stream: StreamInfo,
    *,
    level: int,
    interval: int,
    first_chunk: int = 0,
    end_chunk: int | None = None,
) -> list[PromptChunk]:
    """Cut a level's keyframes into chunks ``[first_chunk, end_chunk)`` (default: all), each
    holding the keyframes ``holds_keyframe`` gives it (the first chunk is closed)."""
    chunks = []
    end_chunk = stream.chunk_count if end_chunk is None else end_chunk
    for index in range(first_chunk, end_chunk):
        start, end = stream.chunk_range(index)
        first = index == first_chunk
        held = tuple(
            k for k in keyframes if holds_keyframe(k.frame, start, stream.chunk_frames, first=first)
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


def verify_init_state(data: bytes, manifest: Manifest) -> np.ndarray:
    """The init state in ``data`` checked against ``manifest``: its size and sha256 (when the
    manifest records them), its format, and the latent shape of the stream. ``ManifestError``
    for a mismatch, ``InitStateError`` for bytes that are not an init state."""
    info = manifest.init_state
    if info.get("bytes") is not None and len(data) != info["bytes"]:
        raise ManifestError(f"{len(data)} bytes, the manifest says {info['bytes']}")
    digest = hashlib.sha256(data).hexdigest()
    if info.get("sha256") is not None and digest != info["sha256"]:
        raise ManifestError(f"sha256 {digest} is not the manifest's {info['sha256']}")
    latent = parse_init_state(data)
    stream = manifest.stream
    expected = stream.latent.shape(stream.width, stream.height)
    if latent.shape != expected:
        raise ManifestError(
            f"a latent of shape {list(latent.shape)}, a {stream.width}x{stream.height} "
            f"stream needs {list(expected)}"
        )
    return latent


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

    def init_state_path(self) -> Path:
        return self.path / str(self.manifest.init_state["file"])

    def init_state_bytes(self) -> bytes:
        return self.init_state_path().read_bytes()

    def init_state(self) -> np.ndarray:
        return parse_init_state(self.init_state_bytes())


class LadderWriter:
    """Writes a ladder level by level and chunk by chunk, keeping the manifest valid throughout."""

    def __init__(
        self,
        path: str | Path,
        stream: StreamInfo,
        levels: Sequence[tuple[str, int, int]],
        *,
        clock: Callable[[], float] = time.monotonic,
        retire_grace_s: float = RETIRE_GRACE_S,
    ) -> None:
        """``levels`` lists (name, rank, interval) in ascending bitrate order."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        infos = tuple(
            LevelInfo(id=i, name=name, rank=rank, interval=interval, kbps=0.0)
            for i, (name, rank, interval) in enumerate(levels)
        )
        manifest = Manifest(stream=replace(stream, live=True), levels=infos)
        self._setup(directory, manifest, clock, retire_grace_s)
        Manifest.from_json(self._document_with_placeholder())  # validate names and intervals now

    @classmethod
    def resume(cls, path: str | Path) -> LadderWriter:
        """Continue writing an existing ladder (for example after an interrupted run)."""
        writer = cls.__new__(cls)
        directory = Path(path)
        writer._setup(
            directory, load_manifest(directory / MANIFEST_NAME), time.monotonic, RETIRE_GRACE_S
        )
        return writer

    def _setup(
        self, path: Path, manifest: Manifest, clock: Callable[[], float], retire_grace_s: float
    ) -> None:
        """The state of a writer of ``manifest`` in ``path`` (a new ladder or a resumed one)."""
        self.path = path
        self.manifest = manifest
        self.clock = clock
        self.retire_grace_s = retire_grace_s
        self._retired: list[tuple[float, Path]] = []  # (removal time, chunk file)

    def _document_with_placeholder(self) -> dict[str, Any]:
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
        level = self._next_cell(level_id, chunk.index)
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

    def append_gap(self, level_id: int, index: int) -> None:
        """Publish chunk ``index`` of a level as a gap: no file, players skip it (live only)."""
        if not self.manifest.stream.live:
            raise ValueError("only a live ladder can have gaps")
        level = self._next_cell(level_id, index)
        info = ChunkInfo(index=index, bytes=0, keyframes=0, gap=True)
        self.manifest = self.manifest.with_level(
            self._with_rate(replace(level, chunks=level.chunks + (info,)))
        )
        self._write_manifest()

    def grow(self, frames: int) -> None:
        """A live stream now has ``frames`` frames (it never shrinks below what is published)."""
        stream = self.manifest.stream
        if not stream.live:
            raise ValueError("a finished ladder cannot grow")
        if frames < stream.frames:
            raise ValueError(f"a live stream cannot shrink from {stream.frames} to {frames} frames")
        self.manifest = replace(self.manifest, stream=replace(stream, frames=frames))

    def slide_window(self, first: int) -> None:
        """Start the window at chunk ``first``: the manifest stops naming older chunks, and their
        files (but the one just before the window) are removed ``retire_grace_s`` later."""
        manifest = self.manifest
        if not manifest.window_start <= first <= manifest.chunk_count:
            raise ValueError(
                f"window start {first} outside {manifest.window_start}..{manifest.chunk_count}"
            )
        if first == manifest.window_start:
            return
        due = self.clock() + self.retire_grace_s
        for level in manifest.levels:
            # chunk window_start - 1 stayed for the old window's prefix; first - 1 stays now
            for index in range(max(0, manifest.window_start - 1), first - 1):
                self._retired.append((due, self.path / chunk_relpath(level.name, index)))
        levels = tuple(
            self._with_rate(replace(level, chunks=level.chunks[first - manifest.window_start :]))
            for level in manifest.levels
        )
        self.manifest = replace(manifest, levels=levels, window_start=first)
        self._write_manifest()

    def remove_retired(self, *, everything: bool = False) -> int:
        """Delete chunk files whose grace period ended (all of them with ``everything``)."""
        now = self.clock()
        kept: list[tuple[float, Path]] = []
        removed = 0
        for when, path in self._retired:
            if everything or when <= now:
                path.unlink(missing_ok=True)  # a gap never had a file
                removed += 1
            else:
                kept.append((when, path))
        self._retired = kept
        return removed

    def finish(self) -> Manifest:
        """Mark the ladder complete (no longer live)."""
        self.manifest = replace(self.manifest, stream=replace(self.manifest.stream, live=False))
        self._write_manifest()
        self.remove_retired(everything=True)
        return self.manifest

    def _next_cell(self, level_id: int, index: int) -> LevelInfo:
        """The level, after checking that ``index`` is the next chunk it publishes."""
        level = self.manifest.levels[level_id]
        expected = self.manifest.window_start + len(level.chunks)
        if index != expected:
            raise ValueError(f"level {level.name}: expected chunk {expected}, got {index}")
        return level

    def _with_rate(self, level: LevelInfo) -> LevelInfo:
        """The level's rate over the chunks it lists (the window of a live ladder; gaps left out)."""
        stream = self.manifest.stream
        chunks = [c for c in level.chunks if not c.gap]
        frames = sum(
            stream.chunk_range(c.index)[1] - stream.chunk_range(c.index)[0] for c in chunks
        )
        seconds = frames / stream.fps
        kbps = sum(c.bytes for c in chunks) * 8 / 1000 / seconds if seconds else 0.0
        return replace(level, kbps=kbps)

    def _write_manifest(self) -> None:
        manifest = self.manifest
        published = min(manifest.window_start + len(level.chunks) for level in manifest.levels)
        self.manifest = replace(manifest, chunk_count=published)
        document = self._document_with_placeholder()
        Manifest.from_json(document)  # never publish an invalid manifest
        atomic_write_json(self.path / MANIFEST_NAME, document)
        self.remove_retired()
