"""`promptus live` as a user runs it: an RTMP publish from Debian's ffmpeg becomes a finished
live ladder with latency lines and a JSON report; bad arguments get one line and exit 2."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from common.processes import Child, promptus_command
from prompts.manifest import load_manifest
from tests.authoring.live.helpers import ffmpeg, free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 120.0  # torch import on two shared cores


def test_an_rtmp_publish_to_promptus_live_becomes_a_live_ladder(tmp_path: Path) -> None:
    publisher_command = ffmpeg()
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/cam"
    report = tmp_path / "live.json"
    live = Child(
        "live",
        promptus_command(
            "live",
            url,
            "--channel",
            "cam",
            "--media",
            str(tmp_path),
            "--levels",
            "r2n5",
            "--size",
            "64",
            "--chunk-seconds",
            "1",
            "--generator",
            "tiny",
            "--device",
            "cpu",
            "--cluster",
            "none",
            "--preset",
            "demo",
            "--iterations",
            "2,1",
            "--perceptual",
            "none",
            "--open-timeout",
            str(START_TIMEOUT_S),
            "--json",
            str(report),
        ),  # fmt: skip
        env={"OMP_NUM_THREADS": "1"},
    )
    try:
        live.wait_for_line(re.compile(r"opening rtmp://"), START_TIMEOUT_S)
        deadline = time.monotonic() + 30
        while True:  # issue 29: a first connection that is garbage no longer ends the channel
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as garbage:
                    garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                break
            except OSError:  # the listening socket opens a moment after the line
                assert time.monotonic() < deadline, live.output()
                time.sleep(0.2)
        publish = [
            publisher_command, "-loglevel", "error", "-re", "-f", "lavfi", "-i",
            "testsrc=size=320x240:rate=5", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast",
            "-tune", "zerolatency", "-g", "5", "-f", "flv", url,
        ]  # fmt: skip
        deadline = time.monotonic() + 30
        while True:  # the listening socket opens a moment after the line
            result = subprocess.run(publish, capture_output=True, timeout=60, check=False)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stderr.decode()
        assert live.wait() == 0, live.output()
    finally:
        live.stop()
    output = live.output()
    assert "h264 320x240 from rtmp://" in output and "at 5 fps" in output
    assert "live cam: a connection to rtmp://" in output and "was not an RTMP publisher" in output
    assert "chunk 0 r2n5: live latency" in output
    manifest = load_manifest(tmp_path / "cam")
    assert not manifest.stream.live and manifest.chunk_count >= 3  # 4 s at 1 s chunks
    assert all(not c.gap for c in manifest.levels[0].chunks)
    rows = json.loads(report.read_text())
    assert [p["chunk"] for p in rows["publications"]] == list(range(manifest.chunk_count))
    assert all(p["latency_s"] > p["wait_s"] > 0 for p in rows["publications"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["srt://127.0.0.1:9000"], "no SRT"),
        (["{frames}", "--channel", "../up"], "--channel"),
        (["{frames}", "--levels", "r2x5"], "not of the form"),
        (["{frames}", "--max-latency", "0"], "--max-latency must be positive"),
        (["{frames}", "--cluster", "moon"], "--cluster 'moon'"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 64)).save(frames / "0.png")
    argv = [a.format(frames=frames) for a in args]
    if "--channel" not in argv:
        argv += ["--channel", "cam"]
    result = subprocess.run(
        [*promptus_command("live", *argv, "--media", str(tmp_path / "media"), "--size", "64")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
