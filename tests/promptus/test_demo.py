"""`promptus demo`: the rendered clip, argument checks, ladder reuse rules (the full run is in tests/web)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from authoring.procedural_clip import render_clip
from promptus.cli import build_parser, main
from promptus.commands import demo

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser("demo").parse_args(["demo", *argv])


def test_clip_is_deterministic_moving_and_the_right_size(tmp_path: Path) -> None:
    render_clip(tmp_path / "a", frames=6, size=64)
    render_clip(tmp_path / "b", frames=6, size=64)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == [f"{i:05d}.png" for i in range(6)]
    first, last = (np.asarray(Image.open(tmp_path / "a" / n)) for n in (names[0], names[-1]))
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert np.abs(first.astype(int) - last.astype(int)).mean() > 1  # the sun and clouds move
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_abr_names_are_the_players() -> None:
    index = (REPO_ROOT / "web" / "abr" / "index.js").read_text()
    rules = re.search(r"ABR_RULES = Object\.freeze\(\{(.*?)\}\)", index, re.S)
    assert rules is not None
    assert tuple(re.findall(r"^\s*(\w+):", rules.group(1), re.M)) == demo.ABR_NAMES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "--port 0 is not a TCP port"),
        (["--port", "9090"], "--port and --daemon-port are both 9090"),
        (["--source", "/no/such/clip.mp4"], "--source /no/such/clip.mp4: no such file or folder"),
        (["--generator", "sd-turbo"], "--generator sd-turbo needs --weights"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_ladder_reuse_needs_a_finished_manifest(tmp_path: Path) -> None:
    assert not demo._ladder_ready(tmp_path)
    manifest = {"live": True, "chunk_count": 3, "generator": {"id": "tiny:abc"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert not demo._ladder_ready(tmp_path)  # still being written
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "live": False}))
    assert demo._ladder_ready(tmp_path)
    assert demo._ladder_generator(tmp_path) == "tiny:abc"
    (tmp_path / "manifest.json").write_text("{broken")
    assert not demo._ladder_ready(tmp_path) and demo._ladder_generator(tmp_path) is None


def test_url_and_child_commands() -> None:
    args = parse("--port", "8081", "--daemon-port", "9191", "--abr", "bba")
    assert (
        demo._page_url(args, "http://127.0.0.1:8081")
        == "http://127.0.0.1:8081/?channel=demo&abr=bba&daemon=ws://127.0.0.1:9191"
    )
    assert (
        demo._page_url(parse(), "http://127.0.0.1:8080")
        == "http://127.0.0.1:8080/?channel=demo&abr=mpc"
    )
    command = demo._daemon_command(parse(), "http://127.0.0.1:8080", Path("ready.json"))
    daemon_args = build_parser("daemon").parse_args(
        command
    )  # the real `promptus daemon` parser accepts it
    assert daemon_args.generator == demo.DEMO_GENERATOR == "nano" and daemon_args.device == "auto"
    assert daemon_args.ready_file == Path("ready.json")
    assert daemon_args.allow_origins == ["http://127.0.0.1:8080", "http://localhost:8080"]
    gpu = parse("--generator", "sd-turbo", "--weights", "w.safetensors", "--taesd", "taesd")
    gpu_args = build_parser("daemon").parse_args(
        demo._daemon_command(gpu, "http://127.0.0.1:8080", Path("r"))
    )
    assert gpu_args.device == "auto" and gpu_args.weights.name == "w.safetensors"


def test_a_second_demo_of_a_folder_is_refused_and_names_the_running_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("--data", str(tmp_path))
    home = tmp_path / demo.DEMO_GENERATOR
    running = demo._hold_home(home, args, "http://127.0.0.1:8080/?channel=demo&abr=mpc")
    ready = home / "daemon.ready.json"
    ready.write_text("{}")  # the running demo's daemon announcement
    try:
        started = time.monotonic()
        assert main(["demo", "--data", str(tmp_path), "--port", "8181"]) == 2
        assert time.monotonic() - started < 2  # before any child starts
        err = capsys.readouterr().err
        assert f"a demo already runs on {home} (pid {os.getpid()}, since " in err, err
        assert "at http://127.0.0.1:8080/?channel=demo&abr=mpc" in err
        assert f"kill {os.getpid()}" in err and "another --data folder" in err
        assert ready.exists()  # not damaged
    finally:
        running.close()
    demo._hold_home(home, args, "http://x").close()  # free once the first one ends


def test_a_taken_port_is_refused_at_once_naming_its_holder_and_free_ports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken, socket.socket() as probe:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        probe.bind(("127.0.0.1", 0))
        port, daemon_port = taken.getsockname()[1], probe.getsockname()[1]
        probe.close()
        argv = ["demo", "--data", str(tmp_path), "--port", str(port)]
        started = time.monotonic()
        assert main([*argv, "--daemon-port", str(daemon_port)]) == 2
        assert time.monotonic() - started < 2
        err = capsys.readouterr().err
    assert f"--port {port} is in use by pid {os.getpid()} (" in err, err
    suggestion = re.search(r"promptus demo --port (\d+) --daemon-port (\d+)$", err.strip())
    assert suggestion is not None, err
    assert int(suggestion.group(1)) > port and int(suggestion.group(2)) == daemon_port
    assert not (tmp_path / demo.DEMO_GENERATOR / "daemon.ready.json").exists()
    demo._hold_home(tmp_path / demo.DEMO_GENERATOR, parse(), "http://x").close()  # released


def test_publishing_a_build_leaves_no_empty_build_folder(tmp_path: Path) -> None:
    home = tmp_path / "nano"
    for name in ("demo", "other"):
        (home / "build" / name).mkdir(parents=True)
        (home / "build" / name / "manifest.json").write_text("{}")
    demo._publish(home / "build" / "demo", home / "media" / "demo")
    assert (home / "media" / "demo" / "manifest.json").exists()
    assert (home / "build").is_dir()  # another channel's build is still in it
    demo._publish(home / "build" / "other", home / "media" / "other")
    assert not (home / "build").exists()


def test_a_reused_ladder_is_said_with_how_to_rebuild(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    text = demo._reuse_message(tmp_path)
    assert text.startswith(f"promptus demo: reusing the ladder in {tmp_path} (from 20")
    assert text.endswith("`promptus demo --rebuild` fits it again")
