"""``promptus eval``: rate-quality of a ladder's levels next to x264, x265, SVT-AV1 and a VAE baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptus.cli import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ladder", metavar="LADDER", type=Path, help="ladder directory (manifest.json)"
    )
    parser.add_argument(
        "--reference",
        required=True,
        help="the source video or frame folder the ladder was fitted to",
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="directory for rate_quality.{md,json,png}"
    )
    parser.add_argument(
        "--generator",
        choices=("tiny", "tiny-taesd", "sd-turbo"),
        default=None,
        help="generator to regenerate with (default: from the manifest's generator id)",
    )
    parser.add_argument("--weights", type=Path, default=None, help="generator weights (sd-turbo)")
    parser.add_argument(
        "--taesd",
        type=Path,
        default=None,
        help="TAESD folder: decoder for the generator, encoder + decoder for the VAE baseline",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--codecs", default="x264,x265,svt-av1", help="classic codecs to compare (comma-separated)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from engines import GeneratorMismatchError
    from prompts.evaluation import evaluate, table, write_report
    from prompts.inversion.baselines import CLASSIC_CODECS
    from prompts.inversion.cli_common import check_size, load_generator_from_args
    from prompts.inversion.source import SourceError, load_source
    from prompts.ladder import Ladder
    from prompts.manifest import ManifestError

    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
    unknown = [c for c in codecs if c not in CLASSIC_CODECS]
    if unknown:
        raise CommandError(
            f"unknown codec {unknown[0]!r} (choose from {', '.join(CLASSIC_CODECS)})"
        )
    try:
        ladder = Ladder(args.ladder)
    except (OSError, ManifestError, ValueError) as error:
        raise CommandError(f"cannot read ladder {args.ladder}: {error}") from None
    stream = ladder.manifest.stream
    if ladder.manifest.chunk_count == 0:
        raise CommandError(f"ladder {args.ladder} has no published chunks")
    if stream.width != stream.height:
        raise CommandError(
            f"ladder frames are {stream.width}x{stream.height}; eval handles square streams"
        )
    args.generator = args.generator or stream.generator_id.split(":", 1)[0]
    if args.generator not in ("tiny", "tiny-taesd", "sd-turbo"):
        raise CommandError(
            f"ladder generator {stream.generator_id!r} is not one eval can load; pass --generator"
        )
    generator = load_generator_from_args(args)
    check_size(stream.width)
    try:
        generator.check_generator_id(stream.generator_id)
    except GeneratorMismatchError as error:
        raise CommandError(str(error)) from None
    frames = stream.chunk_range(ladder.manifest.chunk_count - 1)[1]
    try:
        reference = load_source(args.reference, stream.width, max_frames=frames).frames
    except SourceError as error:
        raise CommandError(str(error)) from None
    if len(reference) < frames:
        raise CommandError(f"reference has {len(reference)} frames, the ladder {frames}")
    taesd = None
    if args.taesd is not None:
        from engines.taesd import load_taesd

        try:
            taesd = load_taesd(args.taesd, need_encoder=True)
        except (OSError, ValueError) as error:
            raise CommandError(f"cannot load TAESD for the VAE baseline: {error}") from None
    points = evaluate(
        ladder, reference, generator, codecs=codecs, taesd=taesd, progress=not args.quiet
    )
    title = f"{args.ladder.name}: {stream.width}x{stream.height}, {frames} frames, {stream.generator_id}"
    write_report(points, args.out, title)
    print(table(points), end="")
    print(f"wrote {args.out / 'rate_quality.md'}, .json, .png")
    return 0
