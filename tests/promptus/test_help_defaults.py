"""Every command's ``--help`` names every option's default, once; missing weights name the CPU way."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from promptus.cli import COMMANDS, build_parser


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(name)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


def _help_blocks(text: str) -> list[str]:
    """The option entries of a --help text, one string each (invocation + help)."""
    blocks: list[str] = []
    for line in text.splitlines():
        if line.startswith("  -"):
            blocks.append(line.strip())
        elif line.startswith("    ") and blocks:
            blocks[-1] += " " + line.strip()
        elif not line.strip() and blocks:
            blocks.append("")  # a section ends
    return [b for b in blocks if b]


def _takes_a_value(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action.nargs != 0 and not action.required


def _actions_of(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _help_targets() -> list[str]:
    """Every command, and each action of a command made of actions (``telemetry report``)."""
    targets = []
    for command in COMMANDS:
        actions = _actions_of(_subparser(command.name))
        names = [f"{command.name} {name}" for a in actions for name in a.choices]
        targets += names or [command.name]
    return targets


def _parser_of(target: str) -> argparse.ArgumentParser:
    command, *action = target.split()
    parser = _subparser(command)
    return _actions_of(parser)[0].choices[action[0]] if action else parser


@pytest.mark.parametrize("command", _help_targets())
def test_every_option_with_a_value_says_its_default_once(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "promptus", *command.split(), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "1000"},  # one line per option: nothing wraps
    )
    blocks = _help_blocks(result.stdout)
    options = [a for a in _parser_of(command)._actions if _takes_a_value(a)]
    assert options, f"{command} has no options with a value?"
    for action in options:
        flag = action.option_strings[-1]
        (block,) = [b for b in blocks if b.split(" ", 1)[0].rstrip(",") in action.option_strings]
        assert block.count("(default: ") == 1, f"promptus {command} {flag}: {block!r}"
        assert block.count("default: ") == 1, f"promptus {command} {flag} says a default twice"
        if action.default is not None:
            shown = ",".join(action.default) if isinstance(action.default, list) else action.default
            assert f"(default: {shown})" in block, f"promptus {command} {flag}: {block!r}"


def test_commands_that_make_or_play_prompts_default_to_the_cpu_generator() -> None:
    from engines.variants import DEFAULT_GENERATOR
    from promptus.commands.demo import DEMO_GENERATOR

    for name in ("demo", "daemon", "invert", "ladder"):
        (generator,) = [a for a in _subparser(name)._actions if "--generator" in a.option_strings]
        # The demo shows real pictures: the trained nano generator (also CPU, nothing to download).
        assert generator.default == (DEMO_GENERATOR if name == "demo" else DEFAULT_GENERATOR), name
    for name in ("generate", "eval"):  # they read a ladder: its generator
        (generator,) = [a for a in _subparser(name)._actions if "--generator" in a.option_strings]
        assert generator.default is None and "the ladder names" in generator.help, name
