"""`promptus generate LADDER --level L --out video.mp4`: regenerate a ladder level into an H.264 MP4.

With ``--reference`` (a folder of frames or a video) it also scores every frame (PSNR, SSIM)
and prints a summary (mean, worst and best frame); ``--per-frame`` prints every frame's row,
``--csv`` writes them to a file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from authoring.regenerate import RegenerateJob, regenerate

    for flag, given in (("--csv", args.csv), ("--per-frame", args.per_frame)):
        if given and not args.reference:
            raise CommandError(f"{flag} needs --reference")
    job = RegenerateJob(
        ladder=Path(args.ladder), out=Path(args.out), level=args.level, crf=args.crf,
        reference=Path(args.reference) if args.reference else None,
        csv=Path(args.csv) if args.csv else None,
        allow_generator_mismatch=args.allow_generator_mismatch,
    )  # fmt: skip
    result = regenerate(job, lambda generator_id: _load_generator(args, generator_id))
    generator = result.generator
    print(
        f"wrote {args.out}: {result.frames} frames {result.width}x{result.height} at "
        f"{result.fps:g} fps ({generator.name}, {generator.generator_id}, {generator.device})"
    )
    if result.psnr is not None and result.ssim is not None:
        _print_quality(result.psnr, result.ssim, args.csv, per_frame=args.per_frame)
    return 0


def _load_generator(args: argparse.Namespace, generator_id: str) -> Any:
    """The generator the options name (default: the one ``generator_id`` belongs to), with a
    warning when it is not the ladder's and ``--allow-generator-mismatch`` lets it decode."""
    import torch

    args.generator = args.generator or generator_for_ladder(generator_id)
    generator = load_generator_from_args(
        args,
        dtype=getattr(torch, args.dtype) if args.dtype else None,
        cuda_graph=args.cuda_graph,
        channels_last=args.channels_last,
        compile_mode="default" if args.compile else None,
    )
    if args.allow_generator_mismatch and generator_id != generator.generator_id:
        print(
            f"warning: decoding prompts fitted for {generator_id} with "
            f"{generator.generator_id}: the pictures will not match the source",
            file=sys.stderr,
        )
    return generator


def _print_quality(
    psnr: np.ndarray, ssim: np.ndarray, csv_path: str | None, *, per_frame: bool
) -> None:
    """The scores: a summary (mean, worst, best frame), or every frame with ``--per-frame``."""
    print("frame   psnr_db   ssim")
    if per_frame:
        for index, (p, s) in enumerate(zip(psnr, ssim, strict=True)):
            print(f"{index:5d}  {p:8.3f}  {s:.5f}")
    worst, best = int(psnr.argmin()), int(psnr.argmax())
    print(f"mean   {psnr.mean():8.3f}  {ssim.mean():.5f}  ({len(psnr)} frames)")
    print(f"worst  {psnr[worst]:8.3f}  {ssim[worst]:.5f}  (frame {worst})")
    print(f"best   {psnr[best]:8.3f}  {ssim[best]:.5f}  (frame {best})")
    if not per_frame and csv_path is None:
        print("(--per-frame prints every frame, --csv FILE writes them)")
    if csv_path:
        print(f"wrote {csv_path}")
