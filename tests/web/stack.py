"""A real media server and a real daemon on loopback, as subprocesses, for the browser tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

from client_daemon.ready import read_ready_file
from common.processes import Child, promptus_command
from prompts import testing

REPO_ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "e2e"
# Small enough for the tiny generator on two busy cores: 64x64 at 15 fps, 1 s chunks, 40 s.
STREAM_FPS = 15
STREAM_SIZE = 64
CHUNK_FRAMES = 15
STREAM_FRAMES = 600
LEVELS = (("r2n15", 2, 15), ("r4n5", 4, 5), ("r8n5", 8, 5))  # ascending bitrate
START_TIMEOUT_S = 180.0  # torch import on two shared cores can take a minute


def write_ladder(
    path: Path,
    generator_id: str,
    frames: int = STREAM_FRAMES,
    *,
    fps: float = STREAM_FPS,
    chunk_frames: int = CHUNK_FRAMES,
    vmaf: bool = False,
) -> None:
    """A finished ladder of seeded random prompts for ``generator_id`` (the player needs no fitted
    prompts); ``vmaf``: its chunks carry a VMAF too."""
    testing.write_ladder(
        path,
        generator_id,
        levels=LEVELS,
        frames=frames,
        fps=fps,
        size=STREAM_SIZE,
        chunk_frames=chunk_frames,
        init_seed=3,
        # made-up but ordered qualities so the ABR and the stats panel have numbers to show
        qualities=[
            {"psnr": 20.0 + 4 * level_id, "ssim": 0.80 + 0.05 * level_id}
            | ({"vmaf": 60.0 + 10 * level_id} if vmaf else {})
            for level_id in range(len(LEVELS))
        ],
    )


def promptus_child(name: str, args: list[str], *, env: dict[str, str] | None = None) -> Child:
    """``promptus ARGS`` in the background; its output is kept for failure messages."""
    return Child(name, promptus_command(*args), env=env, cwd=REPO_ROOT)


def start_daemon(port: int, allowed_origin: str) -> tuple[Child, str]:
    """`promptus daemon` with the tiny generator on CPU; returns the process and its generator id."""
    ready = Path(tempfile.mkdtemp(prefix="promptus-daemon-")) / "ready.json"
    # One torch thread: two threads per process oversubscribe two cores shared with the browser.
    process = promptus_child(
        "daemon",
        ["daemon", "--port", str(port), "--generator", "tiny", "--device", "cpu"]
        + ["--allow-origin", allowed_origin, "--ready-file", str(ready)],
        env={"OMP_NUM_THREADS": "1"},
    )
    return process, read_ready_file(process.wait_for_file(ready, START_TIMEOUT_S)).generator_id


def start_server(media: Path, port: int, telemetry: Path) -> Child:
    """`promptus serve` over ``media``; returns once /healthz answers."""
    process = promptus_child(
        "serve",
        ["serve", "--media", str(media), "--port", str(port), "--telemetry", str(telemetry)],
    )
    process.wait_for_http(f"http://127.0.0.1:{port}/healthz", START_TIMEOUT_S)
    return process
