"""The roof's one rule for failures: a ``UserError`` becomes one line on stderr and exit status 2."""

from __future__ import annotations

import sys

from common.errors import UserError

EXIT_USER_ERROR = 2  # bad input, a missing file, a refused request: the message says what to do
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class CommandError(UserError):
    """A command's own refusal (an option out of range, a missing argument)."""


def report(command: str, error: UserError) -> int:
    """Print ``error`` as ``promptus COMMAND: message`` and give the exit status for it."""
    print(f"promptus {command}: {error}", file=sys.stderr)
    return EXIT_USER_ERROR
