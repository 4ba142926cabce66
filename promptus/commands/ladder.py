"""``promptus ladder``: fit several levels and publish them as one chunked prompt ladder."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptus.options import add_levels_option, levels_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from promptus.fitting import add_fit_arguments

    add_fit_arguments(parser)
    add_levels_option(parser)


def run(args: argparse.Namespace) -> int:
    from authoring.jobs import fit_ladder
    from promptus.fitting import fit_job, print_ladder

    job = fit_job(args, levels_from_args(args))
    print_ladder(fit_ladder(Path(args.source), args.out, job), args.out)
    return 0
