"""``promptus invert``: fit one level of prompts (rank R, one keyframe every N frames) to a video."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptus.errors import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from promptus.fitting import add_fit_arguments

    add_fit_arguments(parser)
    parser.add_argument(
        "--rank", type=int, required=True, help="rank r of U (77 x r) and V (r x 1024)"
    )
    parser.add_argument("--interval", type=int, required=True, help="frames between keyframes")


def run(args: argparse.Namespace) -> int:
    from authoring.jobs import fit_ladder
    from authoring.levels import LevelSpec
    from promptus.fitting import fit_job, print_ladder

    if args.rank < 1:
        raise CommandError(f"--rank must be at least 1, got {args.rank}")
    if args.interval < 1:
        raise CommandError(f"--interval must be at least 1, got {args.interval}")
    job = fit_job(args, [LevelSpec(args.rank, args.interval)])
    print_ladder(fit_ladder(Path(args.source), args.out, job), args.out)
    return 0
