"""A ladder level regenerated into an H.264 MP4 (``promptus generate``), optionally scored.

``regenerate(job, load_generator)`` reads the ladder, the level and its initial state, and
(with ``job.reference``) the reference frames, then asks ``load_generator`` for the generator of
the ladder's id, decodes the level chunk by chunk through the generator's own stream decoder
(the decoder a viewer's daemon runs) and writes the MP4. With a reference every frame is scored
(PSNR, SSIM), and ``job.csv`` receives the per-frame rows. Failures are ``RegenerateError``
(or another ``UserError``), one line each.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError


class RegenerateError(UserError, ValueError):
    """The level cannot be regenerated or scored (the message says why)."""


@dataclass(frozen=True)
class RegenerateJob:
    """Which level of which ladder becomes which MP4, and what it is scored against."""

    ladder: Path  # ladder directory (manifest.json, init.bin, level folders)
    out: Path  # the MP4 to write
    level: str | None = None  # level id or name; None: the highest-rate level
    crf: int = 18  # x264 CRF of the output
    reference: Path | None = None  # source frames (folder of images or a video) to score against
    csv: Path | None = None  # per-frame PSNR/SSIM rows to write (needs ``reference``)
    allow_generator_mismatch: bool = False  # decode with other weights (pictures will be wrong)
    progress: bool = True


@dataclass(frozen=True)
class Regenerated:
    """What ``regenerate`` wrote and measured."""

    frames: int  # frames written
    width: int
    height: int
    fps: float
    level: str  # the level's name
    generator: Any  # the generator that decoded it
    psnr: np.ndarray | None = None  # dB per frame, with a reference
    ssim: np.ndarray | None = None  # per frame, with a reference


def regenerate(job: RegenerateJob, load_generator: Callable[[str], Any]) -> Regenerated:
    """Decode ``job.level`` of ``job.ladder`` into ``job.out``; ``load_generator(generator_id)``
    gives the generator for the id the ladder names (called once the inputs are read)."""
    from tqdm import tqdm

    from engines.mp4_file import Mp4Writer
    from prompts.chunk import ChunkFormatError, parse_chunk
    from prompts.ladder import Ladder
    from prompts.manifest import ManifestError

    try:
        ladder = Ladder(job.ladder)
        manifest = ladder.manifest
        level = (
            manifest.level(job.level)
            if job.level is not None
            else max(manifest.levels, key=lambda lv: lv.kbps)
        )
        init_latent = ladder.init_state()
    except (OSError, ManifestError, KeyError, ValueError) as error:
        raise RegenerateError(f"cannot read ladder {job.ladder}: {error}") from None
    info = manifest.stream
    reference = None
    if job.reference is not None:
        reference = _load_reference(job.reference, info.width, info.height, info.frames)
    generator = load_generator(info.generator_id)
    try:
        stream = generator.open_stream(
            width=info.width, height=info.height, init_latent=init_latent,
            noise_seed=info.noise_seed, prev_latent_weight=info.prev_latent_weight,
            prev_latent_rule=info.prev_latent_rule, generator_id=info.generator_id,
            allow_generator_mismatch=job.allow_generator_mismatch,
        )  # fmt: skip
    except ValueError as error:
        raise RegenerateError(str(error)) from None
    decoded = []
    with (
        Mp4Writer(job.out, width=info.width, height=info.height, fps=info.fps, crf=job.crf) as writer,
        tqdm(
            total=info.frames, unit="frame", desc=f"generate {level.name}", file=sys.stderr,
            disable=not job.progress,
        ) as progress,
    ):  # fmt: skip
        for chunk_info in level.chunks:
            try:
                chunk = parse_chunk(ladder.chunk_bytes(level.id, chunk_info.index))
                frames = stream.decode_chunk(chunk)
            except (OSError, ChunkFormatError, ValueError) as error:
                raise RegenerateError(
                    f"chunk {chunk_info.index} of level {level.name}: {error}"
                ) from None
            writer.write(frames)
            if reference is not None:
                decoded.append(frames)
            progress.update(len(frames))
    result = Regenerated(
        frames=writer.frames_written, width=info.width, height=info.height, fps=info.fps,
        level=level.name, generator=generator,
    )  # fmt: skip
    if reference is None:
        return result
    return _scored(result, np.concatenate(decoded), reference, job.csv)


def _load_reference(path: Path, width: int, height: int, frames: int) -> np.ndarray:
    from authoring.source import load_source

    if width != height:
        raise RegenerateError(
            f"--reference scoring needs a square stream (this one is {width}x{height})"
        )
    source = load_source(path, width, max_frames=frames)
    if len(source.frames) < frames:
        raise RegenerateError(
            f"reference {path} has {len(source.frames)} frames, the ladder {frames}"
        )
    return source.frames


def _scored(
    result: Regenerated, decoded: np.ndarray, reference: np.ndarray, csv_path: Path | None
) -> Regenerated:
    from dataclasses import replace

    from authoring.metrics import psnr_per_frame, ssim_per_frame

    reference = reference[: len(decoded)]
    psnr = psnr_per_frame(decoded, reference)
    ssim = ssim_per_frame(decoded, reference)
    if csv_path is not None:
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["frame", "psnr_db", "ssim"])
            writer.writerows(
                [i, f"{p:.4f}", f"{s:.6f}"] for i, (p, s) in enumerate(zip(psnr, ssim, strict=True))
            )
    return replace(result, psnr=psnr, ssim=ssim)
