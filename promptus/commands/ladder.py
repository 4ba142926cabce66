"""``promptus ladder``: fit several levels and publish them as one chunked prompt ladder."""

from __future__ import annotations

import argparse

from promptus.errors import CommandError

DEFAULT_LEVELS = "r2n10,r4n10,r8n10,r16n5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from promptus.fitting import add_fit_arguments

    add_fit_arguments(parser)
    parser.add_argument(
        "--levels",
        default=DEFAULT_LEVELS,
        help="comma-separated r<rank>n<interval>",
    )


def run(args: argparse.Namespace) -> int:
    from authoring.levels import parse_levels
    from promptus.fitting import run_build

    try:
        levels = parse_levels(args.levels)
    except ValueError as error:
        raise CommandError(str(error)) from None
    return run_build(args, levels)
