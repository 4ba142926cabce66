"""``promptus <command> --help`` answers without importing torch (seconds on a small machine)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from promptus.cli import COMMANDS

_PROBE = """
import contextlib, io, sys
from promptus.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main([sys.argv[1], "--help"])
print(sorted(name for name in sys.modules if name == "torch" or name.startswith("torch.")))
"""


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_help_imports_no_torch(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, command], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", f"promptus {command} --help imported torch"
