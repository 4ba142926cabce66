"""``promptus ladder``: fit several levels and publish them as one chunked prompt ladder."""

from __future__ import annotations

import argparse

from promptus.options import add_levels_option, levels_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from promptus.fitting import add_fit_arguments

    add_fit_arguments(parser)
    add_levels_option(parser)


def run(args: argparse.Namespace) -> int:
    from promptus.fitting import run_build

    return run_build(args, levels_from_args(args))
