"""``promptus daemon``: options, refusals before anything loads, and a real run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client_daemon.client import DaemonClient
from client_daemon.ready import read_ready_file
from client_daemon.settings import DEFAULT_ALLOWED_ORIGINS
from promptus.cli import build_parser
from promptus.commands import daemon as command
from promptus.errors import CommandError
from tests.client_daemon.helpers import open_message
from wire.daemon import StreamSetup

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str):  # noqa: ANN201
    return build_parser("daemon").parse_args(["daemon", *argv])


def test_defaults() -> None:
    args = parse()
    assert (args.port, args.host, args.generator, args.device) == (
        9090,
        "127.0.0.1",
        "tiny",
        "auto",
    )
    assert args.allow_origins is None  # run() falls back to DEFAULT_ALLOWED_ORIGINS
    # off until a card has been seen to load a package (torch 2.11 segfaulted on an H100)
    assert not args.ahead_of_time and args.compile_cache is None
    assert parse("--ahead-of-time").ahead_of_time
    assert DEFAULT_ALLOWED_ORIGINS == ("http://127.0.0.1:8080", "http://localhost:8080")
    assert parse("--allow-origin", "http://a:1", "--allow-origin", "http://b:2").allow_origins == [
        "http://a:1",
        "http://b:2",
    ]


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--host", "0.0.0.0"], "loopback only"),
        (["--host", "192.168.1.5"], "loopback only"),
        (["--port", "70000"], "is not a TCP port"),
        (["--crf", "60"], "outside 0..51"),
        (["--allow-origin", "example.com"], "is not an origin"),
        (["--allow-origin", "http://example.com/"], "is not an origin"),
    ],
)
def test_bad_options_are_refused_before_loading(argv: list[str], reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        command.run(parse(*argv))


def test_backend_choices_are_the_engines_and_fast_needs_cuda() -> None:
    from engines.variants import BACKEND_KINDS

    assert all(parse("--backend", kind).backend == kind for kind in BACKEND_KINDS)
    assert (
        parse().backend == "auto"
    )  # the fastest there is: TensorRT, else fast on CUDA, torch on the CPU
    with pytest.raises(CommandError, match="needs a CUDA device"):
        command.run(parse("--backend", "fast", "--device", "cpu"))


def test_warm_up_sizes_are_parsed_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse().warm_ups is None  # run() warms up only a backend that compiles per shape
    assert parse("--warm-up", "512x512@10", "--warm-up", "256x128@5").warm_ups == [
        (512, 512, 10),
        (256, 128, 5),
    ]
    with pytest.raises(SystemExit):
        parse("--warm-up", "512@10")
    assert "is not WIDTHxHEIGHT@FRAMES" in capsys.readouterr().err
    with pytest.raises(CommandError, match="--warm-up: .*multiple of 64"):
        command.run(parse("--warm-up", "100x100@4", "--device", "cpu", "--port", "0"))


def test_missing_weights_are_a_clear_error_naming_the_cpu_alternative() -> None:
    with pytest.raises(
        CommandError, match="sd-turbo needs --weights and --taesd.*--generator tiny"
    ):
        command.run(parse("--generator", "sd-turbo", "--device", "cpu"))


@pytest.mark.slow
def test_the_command_serves_a_page_and_announces_itself(tmp_path) -> None:  # noqa: ANN001
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "promptus", "daemon", "--port", "0", "--device", "cpu"]
        + ["--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        announced = read_ready_file(ready)
        assert announced.url.startswith("ws://127.0.0.1:") and announced.pid == process.pid
        assert announced.generator_id.startswith("tiny:") and announced.device == "cpu"

        async def play() -> str:
            async with await DaemonClient.connect(announced.url) as page:
                request = open_message(announced.generator_id)
                setup = StreamSetup.from_fields(request.stream.to_fields())
                return (await page.open(setup, request.init_state)).mime

        assert asyncio.run(play()).startswith('video/mp4; codecs="avc1.')
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not ready.exists()  # withdrawn on exit


def test_the_pages_daemon_commands_ask_for_the_weight_files_each_generator_needs() -> None:
    """web/controllers/notice-controller.js DAEMON_WEIGHT_OPTIONS is engines/variants.py's table."""
    import re

    from engines.variants import VARIANTS

    source = (REPO_ROOT / "web" / "controllers" / "notice-controller.js").read_text()
    table = re.search(r"DAEMON_WEIGHT_OPTIONS = Object\.freeze\(\{(.*?)\}\)", source, re.S)
    assert table is not None
    options = dict(re.findall(r"^\s*'?([\w-]+)'?: '([^']*)',", table.group(1), re.M))
    expected = {
        name: ("" if not variant.needs_weights else " --weights PATH")
        + (" --taesd DIR" if variant.needs_taesd else "")
        for name, variant in VARIANTS.items()
    }
    assert options == expected
