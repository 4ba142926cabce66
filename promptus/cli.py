"""`promptus` command line: a table of subcommands, each living in the package it belongs to.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the
module of the command being run is imported, so ``promptus --help`` stays fast and a
heavy dependency (torch, PyAV) is loaded only by the commands that need it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2, no traceback."""


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "demo",
        "promptus.demo",
        "build the demo ladder, start server and daemon, print the player URL",
    ),
    Command(
        "import-legacy",
        "prompts.cli_import_legacy",
        "convert the original release's .prompt files into a ladder",
    ),
    Command(
        "inspect",
        "prompts.cli_inspect",
        "describe a prompt chunk, level or ladder (keyframes, rank, bytes, kbps)",
    ),
    Command(
        "generate",
        "engines.cli_generate",
        "regenerate a ladder level into an H.264 MP4 (optionally score it)",
    ),
    Command(
        "serve", "server.cli", "run the media server that publishes prompt ladders over WebSocket"
    ),
    Command(
        "daemon", "client_daemon.cli", "run the local generation daemon (prompt chunks -> fMP4)"
    ),
    Command("invert", "prompts.cli_invert", "fit one level of prompts to a video (inversion)"),
    Command(
        "ladder", "prompts.cli_ladder", "fit several levels and publish a chunked prompt ladder"
    ),
    Command(
        "eval",
        "prompts.cli_eval",
        "rate-quality of a ladder next to x264, x265, SVT-AV1 and a VAE baseline",
    ),
    Command(
        "emulate",
        "emulation.cli",
        "run ABR algorithms against network traces (fast simulation or full stack)",
    ),
)


def _command_names() -> dict[str, Command]:
    return {command.name: command for command in COMMANDS}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptus",
        description="Promptus streaming stack: video streamed as prompts instead of pixels.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        if command.name == selected:
            importlib.import_module(command.module).add_arguments(sub)
    return parser


def _selected_command(argv: Sequence[str]) -> str | None:
    names = _command_names()
    for arg in argv:
        if arg.startswith("-"):
            continue
        return arg if arg in names else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = _selected_command(argv)
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(_command_names()[args.command].module)
    try:
        return int(module.run(args) or 0)
    except CommandError as error:
        print(f"promptus {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
