"""`promptus` command line: a table of subcommands, one module each under ``promptus.commands``.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``: it parses,
checks its options and calls the lower floors. Only the module of the command being run is
imported, so ``promptus --help`` stays fast and a heavy dependency (torch, PyAV) is loaded
only by the commands that need it. Lower floors raise ``common.errors.UserError``; this is
the only place that turns one into exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from common.errors import UserError
from promptus.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, report


@dataclass(frozen=True)
class Command:
    name: str
    help: str

    @property
    def module(self) -> str:
        """``promptus.commands.<name>`` with dashes as underscores."""
        return f"promptus.commands.{self.name.replace('-', '_')}"


COMMANDS: tuple[Command, ...] = (
    Command("demo", "build the demo ladder, start server and daemon, print the player URL"),
    Command("import-legacy", "convert the original release's .prompt files into a ladder"),
    Command("inspect", "describe a prompt chunk, level or ladder (keyframes, rank, bytes, kbps)"),
    Command("generate", "regenerate a ladder level into an H.264 MP4 (optionally score it)"),
    Command("live", "turn a live feed into a live prompt ladder (a channel with a DVR window)"),
    Command("serve", "run the media server that publishes prompt ladders over WebSocket"),
    Command("daemon", "run the local generation daemon (prompt chunks -> fMP4)"),
    Command("invert", "fit one level of prompts to a video (inversion)"),
    Command("ladder", "fit several levels and publish a chunked prompt ladder"),
    Command("catalog", "fit a ladder for each of many titles, segment-parallel on a Ray cluster"),
    Command("eval", "rate-quality of a ladder next to x264, x265, SVT-AV1 and a VAE baseline"),
    Command("emulate", "run ABR algorithms against network traces (fast simulation or full stack)"),
    Command("telemetry", "report on real sessions (Puffer-style) or prune the telemetry database"),
)


class DefaultsShownFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every command's ``--help`` ends each option with its default, written once, here.

    argparse appends ``(default: VALUE)``; an option whose default is None (its meaning depends
    on other options: "the generator the ladder names") says its default in its own help text,
    and flags (default False) are off unless given.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _command_names() -> dict[str, Command]:
    return {command.name: command for command in COMMANDS}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptus",
        description="Promptus streaming stack: video streamed as prompts instead of pixels.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            formatter_class=DefaultsShownFormatter,
        )
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
        return EXIT_USER_ERROR
    module = importlib.import_module(_command_names()[args.command].module)
    # Nothing here needs a model hub: an accidental hub lookup fails at once instead of waiting.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return int(module.run(args) or 0)
    except UserError as error:
        return report(args.command, error)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
