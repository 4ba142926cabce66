"""A real media server and a real daemon on loopback, as subprocesses, for the browser tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path

from tests import ladders

REPO_ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "e2e"
# Small enough for the tiny generator on two busy cores: 64x64 at 15 fps, 1 s chunks, 40 s.
STREAM_FPS = 15
STREAM_SIZE = 64
CHUNK_FRAMES = 15
STREAM_FRAMES = 600
LEVELS = (("r2n15", 2, 15), ("r4n5", 4, 5), ("r8n5", 8, 5))  # ascending bitrate
DAEMON_READY = re.compile(r"promptus daemon: (\S+) generator (\S+) on")
START_TIMEOUT_S = 180.0  # torch import on two shared cores can take a minute


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_ladder(path: Path, generator_id: str, frames: int = STREAM_FRAMES) -> None:
    """A finished ladder of seeded random prompts for ``generator_id`` (the player needs no fitted prompts)."""
    ladders.write_ladder(
        path,
        generator_id,
        levels=LEVELS,
        frames=frames,
        fps=STREAM_FPS,
        size=STREAM_SIZE,
        chunk_frames=CHUNK_FRAMES,
        init_seed=3,
        # made-up but ordered qualities so the ABR and the stats panel have numbers to show
        qualities=[
            {"psnr": 20.0 + 4 * level_id, "ssim": 0.80 + 0.05 * level_id}
            for level_id in range(len(LEVELS))
        ],
    )


class Process:
    """A `promptus` subcommand in the background; its output is kept for failure messages."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.lines: deque[str] = deque(maxlen=200)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "promptus", *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip())

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = pattern.search(line)
                if match:
                    return match
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"promptus {' '.join(self.args)} exited {self.popen.returncode}:\n{self.output()}"
                )
            time.sleep(0.1)
        raise TimeoutError(
            f"promptus {' '.join(self.args)} not ready after {timeout_s} s:\n{self.output()}"
        )

    def kill(self) -> None:
        """SIGKILL: the crash case (no goodbye to the pages)."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)

    def stop(self) -> None:
        """SIGTERM (SIGINT is ignored by jobs a non-interactive shell started), then SIGKILL after 10 s."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def start_daemon(port: int, allowed_origin: str) -> tuple[Process, str]:
    """`promptus daemon` with the tiny generator on CPU; returns the process and its generator id."""
    # One torch thread: two threads per process oversubscribe two cores shared with the browser.
    process = Process(
        [
            "daemon",
            "--port",
            str(port),
            "--generator",
            "tiny",
            "--device",
            "cpu",
            "--allow-origin",
            allowed_origin,
        ],
        env={"OMP_NUM_THREADS": "1"},
    )
    match = process.wait_for_line(DAEMON_READY, START_TIMEOUT_S)
    return process, match.group(2)


def start_server(media: Path, port: int, telemetry: Path) -> Process:
    """`promptus serve` over ``media``; returns once /healthz answers."""
    process = Process(
        ["serve", "--media", str(media), "--port", str(port), "--telemetry", str(telemetry)]
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(
                f"promptus serve exited {process.popen.returncode}:\n{process.output()}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"promptus serve not ready after {START_TIMEOUT_S} s:\n{process.output()}")
