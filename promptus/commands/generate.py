"""`promptus generate LADDER --level L --out video.mp4`: regenerate a ladder level into an H.264 MP4.

With ``--reference`` (a folder of frames or a video) it also scores every frame (PSNR, SSIM)
and prints a summary (mean, worst and best frame); ``--per-frame`` prints every frame's row,
``--csv`` writes them to a file.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from promptus.errors import CommandError
from promptus.options import (
    FROM_LADDER,
    add_generator_options,
    generator_for_ladder,
    load_generator_from_args,
)

if TYPE_CHECKING:
    import numpy as np

DTYPE_NAMES = ("float32", "float16", "bfloat16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ladder", help="ladder directory (manifest.json, init.bin, level folders)")
    parser.add_argument(
        "--level", default=None, help="level id or name (default: the highest-rate level)"
    )
    parser.add_argument("--out", required=True, help="MP4 file to write (H.264)")
    add_generator_options(parser, default=FROM_LADDER)
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        default=None,
        help="floating-point type (default: float32 on CPU, float16 on CUDA)",
    )
    parser.add_argument(
        "--cuda-graph", action="store_true", help="replay a captured CUDA graph per batch shape"
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile both networks (CUDA; slow start)"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="channels_last memory format (CUDA)"
    )
    parser.add_argument("--crf", type=int, default=18, help="x264 CRF of the output")
    parser.add_argument(
        "--reference",
        default=None,
        help="source frames (folder of images or a video) to score against (default: none, "
        "no scores)",
    )
    parser.add_argument(
        "--csv",
        default=None,
        help="write per-frame PSNR/SSIM to this CSV (needs --reference) (default: none)",
    )
    parser.add_argument(
        "--per-frame",
        action="store_true",
        help="print every frame's PSNR and SSIM, not just the summary (needs --reference)",
    )
    parser.add_argument(
        "--allow-generator-mismatch",
        action="store_true",
        help="decode even though the ladder names another generator (pictures will be wrong)",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from engines.mp4_file import Mp4Writer
    from prompts.chunk import ChunkFormatError, parse_chunk
    from prompts.ladder import Ladder
    from prompts.manifest import ManifestError

    for flag, given in (("--csv", args.csv), ("--per-frame", args.per_frame)):
        if given and not args.reference:
            raise CommandError(f"{flag} needs --reference")
    try:
        ladder = Ladder(args.ladder)
        manifest = ladder.manifest
        level = (
            manifest.level(args.level)
            if args.level is not None
            else max(manifest.levels, key=lambda lv: lv.kbps)
        )
        init_latent = ladder.init_state()
    except (OSError, ManifestError, KeyError, ValueError) as error:
        raise CommandError(f"cannot read ladder {args.ladder}: {error}") from None
    info = manifest.stream
    reference = (
        _load_reference(args.reference, info.width, info.height, info.frames)
        if args.reference
        else None
    )
    args.generator = args.generator or generator_for_ladder(info.generator_id)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    generator = load_generator_from_args(
        args,
        dtype=dtype,
        cuda_graph=args.cuda_graph,
        channels_last=args.channels_last,
        compile_mode="default" if args.compile else None,
    )
    if args.allow_generator_mismatch and info.generator_id != generator.generator_id:
        print(
            f"warning: decoding prompts fitted for {info.generator_id} with "
            f"{generator.generator_id}: the pictures will not match the source",
            file=sys.stderr,
        )
    try:
        stream = generator.open_stream(
            width=info.width,
            height=info.height,
            init_latent=init_latent,
            noise_seed=info.noise_seed,
            prev_latent_weight=info.prev_latent_weight,
            prev_latent_rule=info.prev_latent_rule,
            generator_id=info.generator_id,
            allow_generator_mismatch=args.allow_generator_mismatch,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None

    decoded = []
    with (
        Mp4Writer(
            args.out, width=info.width, height=info.height, fps=info.fps, crf=args.crf
        ) as writer,
        tqdm(
            total=info.frames, unit="frame", desc=f"generate {level.name}", file=sys.stderr
        ) as progress,
    ):
        for chunk_info in level.chunks:
            try:
                chunk = parse_chunk(ladder.chunk_bytes(level.id, chunk_info.index))
                frames = stream.decode_chunk(chunk)
            except (OSError, ChunkFormatError, ValueError) as error:
                raise CommandError(
                    f"chunk {chunk_info.index} of level {level.name}: {error}"
                ) from None
            writer.write(frames)
            if reference is not None:
                decoded.append(frames)
            progress.update(len(frames))
    print(
        f"wrote {args.out}: {writer.frames_written} frames {info.width}x{info.height} at {info.fps:g} fps "
        f"({generator.name}, {generator.generator_id}, {generator.device})"
    )
    if reference is not None:
        _report_quality(np.concatenate(decoded), reference, args.csv, per_frame=args.per_frame)
    return 0


def _load_reference(path: str, width: int, height: int, frames: int) -> np.ndarray:
    from authoring.source import SourceError, load_source

    if width != height:
        raise CommandError(
            f"--reference scoring needs a square stream (this one is {width}x{height})"
        )
    try:
        source = load_source(path, width, max_frames=frames)
    except SourceError as error:
        raise CommandError(str(error)) from None
    if len(source.frames) < frames:
        raise CommandError(f"reference {path} has {len(source.frames)} frames, the ladder {frames}")
    return source.frames


def _report_quality(
    decoded: np.ndarray, reference: np.ndarray, csv_path: str | None, *, per_frame: bool
) -> None:
    from authoring.metrics import psnr_per_frame, ssim_per_frame

    reference = reference[: len(decoded)]
    psnr = psnr_per_frame(decoded, reference)
    ssim = ssim_per_frame(decoded, reference)
    print("frame   psnr_db   ssim")
    if per_frame:
        for index, (p, s) in enumerate(zip(psnr, ssim, strict=True)):
            print(f"{index:5d}  {p:8.3f}  {s:.5f}")
    worst, best = int(psnr.argmin()), int(psnr.argmax())
    print(f"mean   {psnr.mean():8.3f}  {ssim.mean():.5f}  ({len(decoded)} frames)")
    print(f"worst  {psnr[worst]:8.3f}  {ssim[worst]:.5f}  (frame {worst})")
    print(f"best   {psnr[best]:8.3f}  {ssim[best]:.5f}  (frame {best})")
    if not per_frame and csv_path is None:
        print("(--per-frame prints every frame, --csv FILE writes them)")
    if csv_path:
        with open(Path(csv_path), "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["frame", "psnr_db", "ssim"])
            writer.writerows(
                [i, f"{p:.4f}", f"{s:.6f}"] for i, (p, s) in enumerate(zip(psnr, ssim, strict=True))
            )
        print(f"wrote {csv_path}")
