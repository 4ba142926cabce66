"""Describe a chunk, a level directory or a whole ladder: keyframes, rank, bytes, bitrate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from prompts.chunk import PromptChunk, parse_chunk
from prompts.ladder import Ladder, verify_init_state
from prompts.manifest import Manifest, load_manifest


@dataclass
class LevelReport:
    name: str
    rank: int
    interval: int
    chunks: int
    keyframes: int
    frames: int
    raw_bytes: int
    coded_bytes: int
    kbps: float | None

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.coded_bytes if self.coded_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["compression_ratio"] = round(self.ratio, 4)
        return out


def _report(name: str, parsed: list[tuple[PromptChunk, int]], fps: float | None) -> LevelReport:
    chunks = [chunk for chunk, _ in parsed]
    frames = sum(c.frame_count for c in chunks)
    coded = sum(size for _, size in parsed)
    return LevelReport(
        name=name,
        rank=chunks[0].rank,
        interval=chunks[0].interval,
        chunks=len(chunks),
        keyframes=sum(len(c.keyframes) for c in chunks),
        frames=frames,
        raw_bytes=sum(c.raw_payload_bytes for c in chunks),
        coded_bytes=coded,
        kbps=(coded * 8 / 1000 / (frames / fps)) if fps and frames else None,
    )


class LadderDefect(UserError, ValueError):
    """A file the manifest names is missing, unreadable or not what the manifest says."""


def _parse_file(path: Path, expected_bytes: int | None = None) -> tuple[PromptChunk, int]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LadderDefect(f"{path}: {error.strerror}") from None
    if expected_bytes is not None and len(data) != expected_bytes:
        raise LadderDefect(f"{path}: {len(data)} bytes, the manifest says {expected_bytes}")
    try:
        return parse_chunk(data), len(data)
    except ValueError as error:
        raise LadderDefect(f"{path}: {error}") from None


def _verify_init_state(ladder: Ladder) -> None:
    path = ladder.init_state_path()
    try:
        verify_init_state(path.read_bytes(), ladder.manifest)
    except OSError as error:
        raise LadderDefect(f"{path}: {error.strerror}") from None
    except ValueError as error:  # ManifestError, InitStateError
        raise LadderDefect(f"{path}: {error}") from None


def inspect_path(path: str | Path) -> tuple[list[LevelReport], Manifest | None]:
    """Parse every chunk under ``path`` (validating each) and summarise per level; a ladder's
    files are also checked against its manifest (chunk sizes, the init state's size, sha256
    and shape): any difference raises ``LadderDefect``."""
    target = Path(path)
    if target.is_file():
        return [_report(target.name, [_parse_file(target)], None)], None
    if (target / "manifest.json").is_file():
        ladder = Ladder(target)
        manifest = ladder.manifest
        _verify_init_state(ladder)
        reports = []
        for level in manifest.levels:
            parsed = [
                _parse_file(ladder.chunk_path(level.id, c.index), c.bytes) for c in level.chunks
            ]
            if parsed:
                reports.append(_report(level.name, parsed, manifest.stream.fps))
        return reports, manifest
    if target.is_dir():
        files = sorted(target.glob("*.chunk"))
        if not files:
            raise ValueError(f"{target}: no manifest.json and no *.chunk files")
        parent = (
            load_manifest(target.parent) if (target.parent / "manifest.json").is_file() else None
        )
        fps = parent.stream.fps if parent else None
        return [_report(target.name, [_parse_file(f) for f in files], fps)], parent
    raise ValueError(f"{target}: no such file or directory")
