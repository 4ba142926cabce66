"""The ladder manifest (``manifest.json``): stream info, levels and per-chunk facts.

One schema, validated on load, shared by the ladder writer, the media server, the daemon
and the player (``docs/prompt-format.md`` documents every field).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.errors import UserError
from prompts.chunk import MAX_CHUNK_BYTES, MAX_GENERATOR_ID
from prompts.init_state import MAX_INIT_STATE_BYTES
from prompts.stream_model import (
    CHUNK_RESET,
    NOISE_SEED,
    PREV_LATENT_RULES,
    PREV_LATENT_WEIGHT,
    SD_LATENT,
    LatentGeometry,
    size_problem,
)

FORMAT = "promptus-ladder"
VERSION = 2  # written; 2 added the live window (`window_start`) and gap chunks
READABLE_VERSIONS = (1, 2)
MAX_MANIFEST_BYTES = 8 * 1024 * 1024  # 8 MiB
MAX_CHUNK_FRAMES = 100_000  # frames of one chunk (the daemon's own budget is far lower)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ManifestError(UserError, ValueError):
    """A manifest is missing a field or holds a value of the wrong type or range."""


@dataclass(frozen=True)
class ChunkInfo:
    index: int
    bytes: int
    keyframes: int
    psnr: float | None = None
    ssim: float | None = None
    vmaf: float | None = None
    # a live channel published nothing for this chunk of this level (no file; players skip it)
    gap: bool = False


@dataclass(frozen=True)
class LevelInfo:
    id: int
    name: str
    rank: int
    interval: int
    kbps: float
    chunks: tuple[ChunkInfo, ...] = ()


@dataclass(frozen=True)
class StreamInfo:
    fps: float
    width: int
    height: int
    frames: int
    chunk_frames: int
    generator_id: str
    generator_name: str
    noise_seed: int = NOISE_SEED
    prev_latent_weight: float = PREV_LATENT_WEIGHT
    prev_latent_rule: str = CHUNK_RESET
    live: bool = False
    latent: LatentGeometry = SD_LATENT  # the generator's latent geometry (init state, noise)

    @property
    def chunk_count(self) -> int:
        return math.ceil(self.frames / self.chunk_frames)

    def chunk_range(self, index: int) -> tuple[int, int]:
        """Frames ``[start, end)`` of chunk ``index``."""
        start = index * self.chunk_frames
        return start, min(start + self.chunk_frames, self.frames)


@dataclass(frozen=True)
class Manifest:
    stream: StreamInfo
    levels: tuple[LevelInfo, ...]
    init_state: dict[str, Any] = field(default_factory=dict)
    chunk_count: int = 0
    # first chunk still served: a live channel's DVR window is [window_start, chunk_count);
    # ``levels[].chunks`` list exactly the chunks from window_start on
    window_start: int = 0

    def chunk_info(self, level_id: int, index: int) -> ChunkInfo | None:
        """The facts of chunk ``index`` of a level, None when it is not listed (outside the window)."""
        position = index - self.window_start
        chunks = self.levels[level_id].chunks
        return chunks[position] if 0 <= position < len(chunks) else None

    def level(self, key: int | str) -> LevelInfo:
        """A level by id (int or digit string) or by name."""
        for level in self.levels:
            if level.name == key or str(level.id) == str(key):
                return level
        raise KeyError(f"no level {key!r}; levels are {[lv.name for lv in self.levels]}")

    def to_json(self) -> dict[str, Any]:
        s = self.stream
        return {
            "format": FORMAT,
            "version": VERSION,
            "fps": s.fps,
            "width": s.width,
            "height": s.height,
            "frames": s.frames,
            "chunk_frames": s.chunk_frames,
            "chunk_count": self.chunk_count,
            "window_start": self.window_start,
            "live": s.live,
            "generator": {"id": s.generator_id, "name": s.generator_name},
            "noise_seed": s.noise_seed,
            "prev_latent_weight": s.prev_latent_weight,
            "prev_latent_rule": s.prev_latent_rule,
            "latent": {"channels": s.latent.channels, "factor": s.latent.factor},
            "init_state": dict(self.init_state),
            "levels": [
                {
                    "id": level.id,
                    "name": level.name,
                    "rank": level.rank,
                    "interval": level.interval,
                    "kbps": round(level.kbps, 3),
                    "chunks": [
                        {
                            k: v
                            for k, v in vars(chunk).items()
                            if (v is not None or k in ("psnr", "ssim")) and (k != "gap" or v)
                        }
                        for chunk in level.chunks
                    ],
                }
                for level in self.levels
            ],
        }

    @classmethod
    def from_json(cls, document: Any) -> Manifest:
        """Validate a parsed manifest.json; raises ``ManifestError`` naming the bad field."""
        doc = _require(document, dict, "manifest")
        if doc.get("format") != FORMAT:
            raise ManifestError(f"format must be {FORMAT!r}, got {doc.get('format')!r}")
        if doc.get("version") not in READABLE_VERSIONS:
            raise ManifestError(f"unsupported manifest version {doc.get('version')!r}")
        generator = _require(doc.get("generator"), dict, "generator")
        stream = StreamInfo(
            fps=_number(doc, "fps", low=1e-3, high=1000),
            width=_integer(doc, "width", low=1, high=8192),
            height=_integer(doc, "height", low=1, high=8192),
            frames=_integer(doc, "frames", low=1, high=10**9),
            chunk_frames=_integer(doc, "chunk_frames", low=1, high=MAX_CHUNK_FRAMES),
            generator_id=_string(generator, "id"),
            generator_name=_string(generator, "name"),
            noise_seed=_integer(doc, "noise_seed", low=0, high=2**32 - 1),
            prev_latent_weight=_number(doc, "prev_latent_weight", low=0.0, high=1.0),
            prev_latent_rule=_string(doc, "prev_latent_rule"),
            live=_require(doc.get("live", False), bool, "live"),
            latent=_latent_geometry(doc),
        )
        if stream.prev_latent_rule not in PREV_LATENT_RULES:
            raise ManifestError(f"prev_latent_rule must be one of {PREV_LATENT_RULES}")
        problem = size_problem(stream.width, stream.height)
        if problem is not None:
            raise ManifestError(f"width and height: {problem}")
        if len(stream.generator_id.encode("utf-8")) > MAX_GENERATOR_ID:
            raise ManifestError(f"generator.id is longer than {MAX_GENERATOR_ID} bytes")
        chunk_count = _integer(doc, "chunk_count", low=0, high=stream.chunk_count)
        window_start = _integer(doc, "window_start", low=0, high=chunk_count, default=0)
        levels = []
        for position, raw in enumerate(_require(doc.get("levels"), list, "levels")):
            level_doc = _require(raw, dict, f"levels[{position}]")
            chunks = tuple(
                _chunk_info(c)
                for c in (
                    _require(item, dict, f"levels[{position}].chunks[]")
                    for item in _require(level_doc.get("chunks", []), list, "chunks")
                )
            )
            level = LevelInfo(
                id=_integer(level_doc, "id", low=0, high=255),
                name=_string(level_doc, "name"),
                rank=_integer(level_doc, "rank", low=1, high=256),
                interval=_integer(level_doc, "interval", low=1, high=10**4),
                kbps=_number(level_doc, "kbps", low=0.0, high=1e7),
                chunks=chunks,
            )
            if level.id != position:
                raise ManifestError(f"levels[{position}].id must be {position}, got {level.id}")
            if not _safe_name(level.name):
                raise ManifestError(f"level name {level.name!r} is not a safe directory name")
            if stream.chunk_frames % level.interval:
                raise ManifestError(
                    f"level {level.name}: chunk_frames {stream.chunk_frames} is not a multiple "
                    f"of interval {level.interval}"
                )
            _check_chunk_list(level, stream, chunk_count, window_start)
            levels.append(level)
        if not levels:
            raise ManifestError("a ladder needs at least one level")
        init_state = _require(doc.get("init_state"), dict, "init_state")
        _check_init_state(init_state)
        return cls(
            stream=stream,
            levels=tuple(levels),
            init_state=init_state,
            chunk_count=chunk_count,
            window_start=window_start,
        )

    def with_level(self, level: LevelInfo) -> Manifest:
        levels = list(self.levels)
        levels[level.id] = level
        return replace(self, levels=tuple(levels))


def _check_chunk_list(
    level: LevelInfo, stream: StreamInfo, chunk_count: int, window_start: int
) -> None:
    """What the server and the daemon rely on: every published chunk of the window is listed,
    none beyond the stream, and no chunk claims more keyframes than it has frames (plus the
    one at its end)."""
    chunks = level.chunks
    end = window_start + len(chunks)
    if [c.index for c in chunks] != list(range(window_start, end)):
        raise ManifestError(
            f"level {level.name}: chunk indices must be {window_start}..n-1 in order"
        )
    if end < chunk_count:
        raise ManifestError(
            f"level {level.name} lists chunks up to {end}, chunk_count says {chunk_count} "
            "are published"
        )
    if end > stream.chunk_count:
        raise ManifestError(
            f"level {level.name} lists chunks up to {end}, the stream has {stream.chunk_count}"
        )
    for chunk in chunks:
        start, end = stream.chunk_range(chunk.index)
        if chunk.keyframes > end - start + 1:
            raise ManifestError(
                f"level {level.name} chunk {chunk.index}: {chunk.keyframes} keyframes in "
                f"{end - start} frames"
            )


def _check_init_state(init_state: dict[str, Any]) -> None:
    """``file`` is a plain name inside the ladder; ``bytes`` and ``sha256``, when given, are sane."""
    name = _string(init_state, "file")
    if not _safe_name(name):
        raise ManifestError(f"init_state.file {name!r} is not a plain file name in the ladder")
    if init_state.get("bytes") is not None:
        _integer(init_state, "bytes", low=1, high=MAX_INIT_STATE_BYTES)
    digest = init_state.get("sha256")
    if digest is not None and (not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest)):
        raise ManifestError("init_state.sha256 must be 64 lowercase hex digits")


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate ``manifest.json`` (a path to the file or to its ladder directory)."""
    target = Path(path)
    if target.is_dir():
        target = target / "manifest.json"
    try:
        raw = target.read_bytes()
    except OSError as error:
        raise ManifestError(f"cannot read {target}: {error.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"size over limit: manifest of {len(raw)} bytes")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{target} is not valid JSON: {error}") from None
    return Manifest.from_json(document)


def _latent_geometry(doc: dict[str, Any]) -> LatentGeometry:
    """The ``latent`` field (absent in manifests written before it existed: SD's geometry)."""
    if "latent" not in doc:
        return SD_LATENT
    latent = _require(doc["latent"], dict, "latent")
    try:
        return LatentGeometry(
            channels=_integer(latent, "channels", low=1, high=2**16),
            factor=_integer(latent, "factor", low=1, high=2**16),
        )
    except ValueError as error:
        raise ManifestError(f"latent: {error}") from None


def _safe_name(name: str) -> bool:
    return (
        bool(name)
        and len(name) <= 64
        and all(ch.isalnum() or ch in "-_." for ch in name)
        and not name.startswith(".")
    )


def _require(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ManifestError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _chunk_info(doc: dict[str, Any]) -> ChunkInfo:
    gap = _require(doc.get("gap", False), bool, "gap")
    size = _integer(doc, "bytes", low=0 if gap else 1, high=0 if gap else MAX_CHUNK_BYTES)
    return ChunkInfo(
        index=_integer(doc, "index", low=0, high=10**9),
        bytes=size,
        keyframes=_integer(doc, "keyframes", low=0, high=0 if gap else MAX_CHUNK_FRAMES + 1),
        psnr=_optional_number(doc, "psnr"),
        ssim=_optional_number(doc, "ssim"),
        vmaf=_optional_number(doc, "vmaf"),
        gap=gap,
    )


def _integer(
    doc: dict[str, Any], key: str, *, low: int, high: int, default: int | None = None
) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"{key} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ManifestError(f"{key}={value} outside {low}..{high}")
    return value


def _number(doc: dict[str, Any], key: str, *, low: float, high: float) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ManifestError(f"{key} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ManifestError(f"{key}={value} outside {low}..{high}")
    return float(value)


def _optional_number(doc: dict[str, Any], key: str) -> float | None:
    if doc.get(key) is None:
        return None
    return _number(doc, key, low=-1e9, high=1e9)


def _string(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{key} must be a non-empty string, got {value!r}")
    return value
