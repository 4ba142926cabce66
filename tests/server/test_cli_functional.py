"""`promptus serve` as a real process: end to end with a Python viewer, signals, user errors."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from common.ports import free_port
from prompts.ladder import Ladder
from server.client import ServerClosed, ViewerClient
from wire.errors import ErrorCode
from wire.framing import ErrorMessage

StartProcess = Callable[..., tuple["subprocess.Popen[bytes]", int]]
STARTUP_TIMEOUT_S = 30.0  # a cold interpreter on a busy 2-core machine


def promptus(*args: str) -> list[str]:
    # the installed entry point (python -m promptus.cli would load a second copy of CommandError)
    return [str(Path(sys.executable).parent / "promptus"), *args]


@pytest.fixture
def serve() -> Iterator[StartProcess]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(media: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        process = subprocess.Popen(
            promptus("serve", "--media", str(media), "--port", str(port), *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process, port

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


async def wait_healthy(port: int, http: aiohttp.ClientSession) -> dict:
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
    while True:
        try:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                return await response.json()
        except aiohttp.ClientConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def fetch_everything(
    port: int, http: aiohttp.ClientSession, channel: str, ladder: Ladder
) -> ViewerClient:
    viewer = await ViewerClient.connect(http, f"ws://127.0.0.1:{port}/ws")
    manifest, init_state = await viewer.hello(channel, abr="pytest")
    assert init_state == ladder.init_state_bytes()
    for level in manifest["levels"]:
        for index in range(manifest["chunk_count"]):
            message = await viewer.get(index, level["id"], prefix=index > 0)
            assert message.data == ladder.chunk_bytes(level["id"], index)
    return viewer


async def test_serve_end_to_end_then_sigterm(
    serve: StartProcess, media: Path, http: aiohttp.ClientSession
) -> None:
    process, port = serve(media)
    assert (await wait_healthy(port, http))["channels"] == 1
    viewer = await fetch_everything(port, http, "sky", Ladder(media / "sky"))
    process.send_signal(signal.SIGTERM)
    message = await viewer.receive(timeout=10)
    assert isinstance(message, ErrorMessage) and message.code is ErrorCode.GOING_AWAY
    with pytest.raises(ServerClosed):
        await viewer.receive(timeout=10)
    assert process.wait(timeout=20) == 0
    with sqlite3.connect(media / "telemetry.sqlite3") as db:  # the default telemetry file
        assert db.execute("SELECT abr FROM sessions").fetchall() == [("pytest",)]
        assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (8,)


def test_serve_refuses_a_missing_media_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        promptus("serve", "--media", str(tmp_path / "nope")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not a directory" in result.stderr


@pytest.mark.slow
async def test_serve_imported_legacy_prompts_with_two_workers(
    serve: StartProcess,
    legacy_prompts_dir: Path,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    media = tmp_path / "media"
    subprocess.run(
        promptus("import-legacy", str(legacy_prompts_dir), "--out", str(media / "sky-legacy")),
        check=True,
        capture_output=True,
        timeout=120,
    )
    process, port = serve(media, "--workers", "2", "--telemetry", str(tmp_path / "t.sqlite3"))
    await wait_healthy(port, http)
    workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(workers) == 2  # two server processes share the port (SO_REUSEPORT)
    ladder = Ladder(media / "sky-legacy")
    viewers = await asyncio.gather(
        *(fetch_everything(port, http, "sky-legacy", ladder) for _ in range(4))
    )
    for viewer in viewers:
        await viewer.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
