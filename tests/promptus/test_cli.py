import subprocess
import sys

from promptus.cli import COMMANDS


def test_help_lists_every_subcommand_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "promptus", "--help"], capture_output=True, text=True, check=True
    )
    for command in COMMANDS:
        assert command.name in result.stdout
    assert {"demo", "import-legacy", "inspect", "generate", "serve", "daemon", "emulate"} <= {
        c.name for c in COMMANDS
    }


def test_unknown_subcommand_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "promptus", "nonsense"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr
