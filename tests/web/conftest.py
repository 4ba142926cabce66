"""Fixtures of the browser tests: a real server + daemon on loopback and Debian's Chromium."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.browser import CHROMIUM
from common.browser import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from common.ports import free_port
from common.processes import Child
from tests.web.stack import (
    CHANNEL,
    CHUNK_FRAMES,
    REPO_ROOT,
    STREAM_FPS,
    start_daemon,
    start_server,
    write_ladder,
)

CHROMIUM_ARGS = [
    *BASE_CHROMIUM_ARGS,
    # a second name for the loopback: pages from it have a foreign origin for the daemon
    "--host-resolver-rules=MAP foreign.test 127.0.0.1",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"


@dataclass
class Stack:
    """The running server and daemon, and how to reach them."""

    media: Path
    telemetry: Path
    server: Child | None
    server_port: int
    daemon: Child
    daemon_port: int
    generator_id: str

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def page_url(self, **params: str) -> str:
        query = {"channel": CHANNEL, "daemon": f"ws://127.0.0.1:{self.daemon_port}", **params}
        return f"{self.origin}/?" + "&".join(f"{k}={v}" for k, v in query.items())

    def channel_count(self) -> int:
        with urllib.request.urlopen(f"{self.origin}/healthz", timeout=5) as response:
            return int(json.load(response)["channels"])

    def publish(
        self,
        name: str,
        generator_id: str,
        frames: int,
        *,
        fps: float = STREAM_FPS,
        chunk_frames: int = CHUNK_FRAMES,
        vmaf: bool = False,
    ) -> None:
        """Write a ladder into the media folder and wait until the server's catalog lists it.

        The server re-scans the folder every few hundred milliseconds; a page opened before
        that scan would (rightly) be told the channel is unknown.
        """
        before = self.channel_count()
        write_ladder(
            self.media / name, generator_id, frames, fps=fps, chunk_frames=chunk_frames, vmaf=vmaf
        )
        deadline = time.monotonic() + 15
        while self.channel_count() <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not pick up channel {name!r} within 15 s")
            time.sleep(0.05)

    def restart_daemon(self) -> None:
        self.daemon, _ = start_daemon(self.daemon_port, self.origin)

    def restart_server(self) -> None:
        self.server = start_server(self.media, self.server_port, self.telemetry)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`promptus daemon` (tiny generator, CPU) and `promptus serve` over a 40 s test ladder."""
    root = tmp_path_factory.mktemp("web-e2e")
    media = root / "media"
    media.mkdir()
    server_port, daemon_port = free_port(), free_port()
    daemon, generator_id = start_daemon(daemon_port, f"http://127.0.0.1:{server_port}")
    stack = Stack(
        media, root / "telemetry.sqlite3", None, server_port, daemon, daemon_port, generator_id
    )
    try:
        write_ladder(media / CHANNEL, generator_id)
        stack.server = start_server(media, server_port, stack.telemetry)
        yield stack
    finally:
        if stack.server is not None:
            stack.server.stop()
        stack.daemon.stop()


@pytest.fixture(scope="module")
def browser_context() -> Iterator[object]:
    """A headless Chromium (Debian's, driven by Playwright) with a throwaway profile."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} missing (apt-get install chromium)"
        if os.environ.get("PROMPTUS_REQUIRE_SHARED") == "1":
            pytest.fail(reason + "; CI must run the browser tests", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="promptus-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 860},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh tab; its console is printed when the test fails."""
    tab = browser_context.new_page()  # type: ignore[attr-defined]
    console: list[str] = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("browser console:\n" + "\n".join(console[-80:]))
    tab.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
