"""Child processes under supervision: start, wait until ready, stop by PID. Written once for
``promptus demo``, the emulator's full mode and the tests that run the real commands.

A child's output is read line by line on a thread (kept for readiness checks and failure
messages, optionally echoed with a ``[name]`` prefix) or sent to a file or the terminal.
Stopping is SIGTERM (a non-interactive shell's background jobs ignore SIGINT), then SIGKILL
after a grace period; every child is reaped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

from common.errors import UserError

T = TypeVar("T")
KEPT_LINES = 400  # output lines kept per child for messages
POLL_S = 0.1  # s between readiness checks
STOP_GRACE_S = 10.0  # s between SIGTERM and SIGKILL


class ChildFailed(UserError):
    """A child exited while it was expected to run, or did not get ready in time."""


def promptus_command(*args: str) -> list[str]:
    """The argv that runs ``promptus ARGS`` with this interpreter."""
    return [sys.executable, "-m", "promptus", *args]


class Child:
    """One supervised child process.

    ``output``: ``"capture"`` keeps its lines (``echo=True`` also prints them prefixed),
    ``"inherit"`` lets it write to our terminal (progress bars), or an open binary file.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        output: str | IO[bytes] = "capture",
        echo: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.lines: deque[str] = deque(maxlen=KEPT_LINES)
        self._echo = echo
        captured = output == "capture"
        if isinstance(output, str) and output not in ("capture", "inherit"):
            raise ValueError(f"output must be 'capture', 'inherit' or a file, got {output!r}")
        target: int | IO[bytes] | None
        if isinstance(output, str):
            target = subprocess.PIPE if captured else None  # "capture" or "inherit"
        else:
            target = output
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            stdout=target,
            stderr=subprocess.STDOUT if target is not None else None,
            env={**os.environ, **(env or {})},
        )
        self._reader: threading.Thread | None = None
        if captured:
            self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
            self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs."""
        return self.process.poll()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            if self._echo:
                print(f"[{self.name}] {line}", flush=True)

    def output(self) -> str:
        """The kept output lines."""
        return "\n".join(self.lines)

    def last_line(self) -> str:
        return next((line for line in reversed(self.lines) if line.strip()), "no output")

    def check_alive(self) -> None:
        """ChildFailed when the child has exited."""
        if self.process.poll() is not None:
            if self._reader is not None:
                self._reader.join(5)
            raise ChildFailed(f"{self.name} exited ({self.process.returncode}): {self.last_line()}")

    def wait_until(self, probe: Callable[[], T | None], timeout_s: float, what: str = "ready") -> T:
        """Poll ``probe`` until it returns something; ChildFailed on exit or after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = probe()
            if result is not None:
                return result
            self.check_alive()
            if time.monotonic() > deadline:
                raise ChildFailed(
                    f"{self.name} not {what} after {timeout_s:.0f} s: {self.last_line()}"
                )
            time.sleep(POLL_S)

    def wait_for_line(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first kept output line matching ``pattern``."""
        return self.wait_until(
            lambda: next((m for line in list(self.lines) if (m := pattern.search(line))), None),
            timeout_s,
            f"showing {pattern.pattern!r}",
        )

    def wait_for_file(self, path: Path, timeout_s: float) -> Path:
        """``path`` once it exists (a ready file the child writes atomically)."""
        return self.wait_until(lambda: path if path.exists() else None, timeout_s)

    def wait_for_http(self, url: str, timeout_s: float) -> None:
        """Until ``url`` answers 200."""
        self.wait_until(lambda: True if http_ok(url) else None, timeout_s, f"answering {url}")

    def wait(self) -> int:
        """Until it exits; its exit status (output fully read)."""
        status = self.process.wait()
        if self._reader is not None:
            self._reader.join(5)
        return status

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; reaped either way."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.wait()

    def kill(self) -> None:
        """SIGKILL: the crash case (no goodbye to anyone)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_GRACE_S)


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False


def first_exited(children: Sequence[Child]) -> Child | None:
    """A child that has exited, if any."""
    return next((child for child in children if child.returncode is not None), None)
