"""What the simulator needs from a ladder: per-level, per-chunk bytes, durations and quality.

Quality follows Puffer: when every chunk carries an SSIM index, quality in dB is
``-10 log10(1 - ssim)`` clamped to [0, 60] (and session means are taken on the raw index,
then converted); otherwise PSNR in dB is used as is. The choice is recorded as ``quality_metric``.

``synthetic_ladder()`` is a modelled ladder for runs before a real one exists: its sizes come
from the prompt byte formula (``77 r + 1024 r`` bytes per keyframe plus parameters), its
qualities are assumptions. Every report names it as synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prompts.manifest import Manifest, ManifestError, load_manifest
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

SSIM_DB_MAX = 60.0  # dB; Puffer's clamp of -10 log10(1 - ssim)
SYNTHETIC_NAME = "synthetic-prompt-ladder (modelled sizes, assumed qualities; not measured)"
SYNTHETIC_FPS = 30.0
SYNTHETIC_CHUNK_FRAMES = 60  # frames; 2 s chunks
SYNTHETIC_CHUNKS = 150  # chunks; 5 minutes of content
QUANT_PARAM_BYTES = 16  # bytes per keyframe for the two (scale, zero point) pairs
# (name, rank, interval, assumed PSNR dB): a rank/interval ladder like the paper's levels.
SYNTHETIC_LEVELS = (
    ("r1n30", 1, 30, 22.0),
    ("r2n20", 2, 20, 24.5),
    ("r4n10", 4, 10, 27.5),
    ("r8n10", 8, 10, 29.5),
    ("r16n5", 16, 5, 31.5),
    ("r32n5", 32, 5, 32.5),
)
SYNTHETIC_CONTENT_SD_DB = 1.5  # dB; chunk-to-chunk difficulty shared by all levels
SYNTHETIC_SIZE_SD = 0.05  # relative spread of chunk sizes (entropy coding)


@dataclass(frozen=True)
class SimLadder:
    """A ladder as the simulator sees it (levels sorted by bitrate, chunk arrays per level)."""

    name: str
    level_names: tuple[str, ...]
    chunk_s: np.ndarray  # [chunks] media seconds of each chunk
    sizes_bytes: np.ndarray  # [levels, chunks] int64
    keyframes: np.ndarray  # [levels, chunks] int64, keyframes each chunk holds
    quality_db: np.ndarray  # [levels, chunks] float64
    ssim: np.ndarray | None  # [levels, chunks] raw SSIM index, when the metric is ssim
    quality_metric: str  # "ssim_db" or "psnr_db"
    fps: float
    chunk_frames: int
    synthetic: bool = False

    @property
    def levels(self) -> int:
        return len(self.level_names)

    @property
    def chunks(self) -> int:
        return len(self.chunk_s)

    @property
    def prefix_bytes(self) -> np.ndarray:
        """Approximate bytes of each chunk's switch prefix (one keyframe of that level)."""
        prefix: np.ndarray = np.ceil(self.sizes_bytes / np.maximum(self.keyframes, 1))
        return prefix.astype(np.int64)

    @property
    def kbps(self) -> np.ndarray:
        """Mean bitrate of each level in kbit/s."""
        kbps: np.ndarray = self.sizes_bytes.sum(axis=1) * 8 / self.chunk_s.sum() / 1000.0
        return kbps

    def to_json(self) -> dict[str, object]:
        """The form the Node simulator reads."""
        return {
            "name": self.name,
            "levels": list(self.level_names),
            "chunkS": self.chunk_s.tolist(),
            "sizes": self.sizes_bytes.tolist(),
            "prefixBytes": self.prefix_bytes.tolist(),
            "kbps": np.round(self.kbps, 3).tolist(),
            "qualityDb": np.round(self.quality_db, 4).tolist(),
            "chunkFrames": self.chunk_frames,
            "fps": self.fps,
        }


def ssim_to_db(ssim: np.ndarray | float) -> np.ndarray:
    """Puffer's SSIM index to dB: -10 log10(1 - ssim), clamped to [0, 60]."""
    index = np.asarray(ssim, dtype=np.float64)
    with np.errstate(divide="ignore"):
        db = -10.0 * np.log10(np.maximum(1.0 - index, 0.0))
    return np.clip(db, 0.0, SSIM_DB_MAX)


def from_manifest(manifest: Manifest, name: str) -> SimLadder:
    """Per-chunk facts of a real ladder; raises ``ManifestError`` when quality is missing."""
    stream = manifest.stream
    counts = {len(level.chunks) for level in manifest.levels}
    if len(counts) != 1 or 0 in counts:
        raise ManifestError(
            "every level must list the same, non-zero number of chunks to be simulated"
        )
    chunks = counts.pop()
    all_chunks = [c for level in manifest.levels for c in level.chunks]
    if all(c.ssim is not None for c in all_chunks):
        metric = "ssim_db"
        ssim = np.array(
            [[c.ssim for c in level.chunks] for level in manifest.levels], dtype=np.float64
        )
        quality = ssim_to_db(ssim)
    elif all(c.psnr is not None for c in all_chunks):
        metric, ssim = "psnr_db", None
        quality = np.array(
            [[c.psnr for c in level.chunks] for level in manifest.levels], dtype=np.float64
        )
    else:
        raise ManifestError("ladder chunks lack a measured quality (ssim or psnr on every chunk)")
    chunk_s = np.array(
        [
            (min((j + 1) * stream.chunk_frames, stream.frames) - j * stream.chunk_frames)
            / stream.fps
            for j in range(chunks)
        ]
    )
    return SimLadder(
        name=name,
        level_names=tuple(level.name for level in manifest.levels),
        chunk_s=chunk_s,
        sizes_bytes=np.array(
            [[c.bytes for c in level.chunks] for level in manifest.levels], dtype=np.int64
        ),
        keyframes=np.array(
            [[c.keyframes for c in level.chunks] for level in manifest.levels], dtype=np.int64
        ),
        quality_db=quality,
        ssim=ssim,
        quality_metric=metric,
        fps=stream.fps,
        chunk_frames=stream.chunk_frames,
    )


def load_ladder(path: Path) -> SimLadder:
    """A ladder directory (or its manifest.json) as a ``SimLadder``."""
    path = Path(path)
    return from_manifest(load_manifest(path), name=(path if path.is_dir() else path.parent).name)


def default_ladder(path: Path, seed: int = 0) -> tuple[SimLadder, str]:
    """The ladder at ``path`` (where ``promptus demo`` keeps its one) when it exists, else the
    synthetic ladder; with a one-line note saying which and why."""
    if not (path / "manifest.json").exists():
        return synthetic_ladder(
            seed
        ), f"no demo ladder at {path} (run `promptus demo` once): synthetic ladder"
    try:
        return load_ladder(path), f"demo ladder {path}"
    except ManifestError as error:
        return synthetic_ladder(seed), f"demo ladder {path} unusable ({error}): synthetic ladder"


def synthetic_ladder(seed: int = 0) -> SimLadder:
    """The built-in modelled ladder (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    chunk_s = SYNTHETIC_CHUNK_FRAMES / SYNTHETIC_FPS
    difficulty = rng.normal(0.0, SYNTHETIC_CONTENT_SD_DB, SYNTHETIC_CHUNKS)
    sizes, quality, keyframe_counts = [], [], []
    for _, rank, interval, psnr in SYNTHETIC_LEVELS:
        keyframes = SYNTHETIC_CHUNK_FRAMES // interval
        nominal = keyframes * ((CONTEXT_TOKENS + CONTEXT_DIM) * rank + QUANT_PARAM_BYTES)
        spread = np.clip(rng.normal(1.0, SYNTHETIC_SIZE_SD, SYNTHETIC_CHUNKS), 0.8, 1.2)
        sizes.append(np.maximum(1, np.round(nominal * spread)).astype(np.int64))
        quality.append(psnr + difficulty)
        keyframe_counts.append(np.full(SYNTHETIC_CHUNKS, keyframes, dtype=np.int64))
    return SimLadder(
        name=SYNTHETIC_NAME,
        level_names=tuple(name for name, *_ in SYNTHETIC_LEVELS),
        chunk_s=np.full(SYNTHETIC_CHUNKS, chunk_s),
        sizes_bytes=np.stack(sizes),
        keyframes=np.stack(keyframe_counts),
        quality_db=np.stack(quality),
        ssim=None,
        quality_metric="psnr_db",
        fps=SYNTHETIC_FPS,
        chunk_frames=SYNTHETIC_CHUNK_FRAMES,
        synthetic=True,
    )
