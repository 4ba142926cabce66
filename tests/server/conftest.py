"""Fixtures for the server tests: small ladders built with LadderWriter, a live server, viewers."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from prompts.ladder import LadderWriter
from prompts.manifest import StreamInfo
from server.app import create_app
from server.client import ViewerClient
from server.keys import catalog_key
from server.settings import ServerSettings
from server.telemetry_db import COLUMNS
from tests.prompts.factories import chunk_of

STREAM = StreamInfo(
    fps=30,
    width=64,
    height=64,
    frames=61,
    chunk_frames=20,
    generator_id="test:0",
    generator_name="test",
)
LEVELS = (("r2n10", 2, 10), ("r2n5", 2, 5))  # (name, rank, interval), ascending bitrate


def append_chunk(
    writer: LadderWriter, index: int, seed: int = 0, level_ids: tuple[int, ...] | None = None
) -> None:
    """Write chunk ``index`` of every level, or of ``level_ids`` (random rank-2 keyframes,
    seeded per level)."""
    stream = writer.manifest.stream
    for level_id, (_, rank, interval) in enumerate(LEVELS):
        if level_ids is not None and level_id not in level_ids:
            continue
        chunk = chunk_of(
            index,
            chunk_frames=stream.chunk_frames,
            interval=interval,
            rank=rank,
            frames=stream.frames,
            level=level_id,
            generator_id=stream.generator_id,
            seed=seed + 1000 * level_id,
        )
        writer.append_chunk(level_id, chunk)


def write_ladder(
    path: Path,
    *,
    chunks: int | None = None,
    finish: bool = True,
    stream: StreamInfo = STREAM,
    seed: int = 0,
) -> LadderWriter:
    """A ladder of LEVELS; ``chunks`` first chunks only (live until finished)."""
    writer = LadderWriter(path, stream, LEVELS)
    writer.write_init_state(np.arange(4 * 8 * 8, dtype=np.float32).reshape(1, 4, 8, 8))
    for index in range(stream.chunk_count if chunks is None else chunks):
        append_chunk(writer, index, seed)
    if finish:
        writer.finish()
    return writer


@pytest.fixture(scope="session")
def sky_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finished test ladder, written once per session (LadderWriter fsyncs every file)."""
    path = tmp_path_factory.mktemp("template") / "sky"
    write_ladder(path)
    return path


@pytest.fixture
def media(tmp_path: Path, sky_template: Path) -> Path:
    """A media folder with one finished channel, ``sky`` (a private copy per test)."""
    folder = tmp_path / "media"
    shutil.copytree(sky_template, folder / "sky")
    return folder


@pytest.fixture
def settings(media: Path, tmp_path: Path) -> ServerSettings:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>player</title>")
    (web / "player.js").write_text("export const x = 1;\n")
    return ServerSettings(
        media_dir=media,
        web_dir=web,
        telemetry=str(tmp_path / "telemetry.sqlite3"),
        catalog_poll_s=0.05,
        telemetry_flush_s=0.05,
    )


StartServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture
def start_server(aiohttp_server: Any, settings: ServerSettings) -> StartServer:
    """Start a real server on a loopback port; keyword arguments override settings."""

    async def start(**overrides: Any) -> TestServer:
        return await aiohttp_server(create_app(replace(settings, **overrides)))

    return start


@pytest.fixture
async def server(start_server: StartServer) -> TestServer:
    return await start_server()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def rescanned(server: TestServer, timeout_s: float = 10.0) -> None:
    """Wait until the catalog watcher has run a whole scan that began after this call."""
    catalog = server.app[catalog_key]
    target = catalog.scans + 2  # the scan in progress (if any) may have missed the change
    deadline = asyncio.get_running_loop().time() + timeout_s
    while catalog.scans < target:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the catalog did not rescan within {timeout_s} s")
        await asyncio.sleep(0.01)


Connect = Callable[..., Awaitable[ViewerClient]]


@pytest.fixture
def connect(http: aiohttp.ClientSession, server: TestServer) -> Connect:
    """Open a viewer WebSocket to ``server`` (or to the server given)."""

    async def open_viewer(target: TestServer | None = None) -> ViewerClient:
        return await ViewerClient.connect(http, str((target or server).make_url("/ws")))

    return open_viewer


class HandClock:
    """A monotonic clock that moves only when a test moves it (``ServerSettings.clock``)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PG_DSN_ENV = "PROMPTUS_TEST_PG_DSN"  # set by scripts/run-tests.sh (scripts/start-test-postgres.sh)


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    """A reachable PostgreSQL with empty telemetry tables, or a skip naming the reason."""
    import asyncpg

    dsn = os.environ.get(PG_DSN_ENV)
    try:
        if not dsn:
            raise LookupError(f"{PG_DSN_ENV} is not set (see docs/server.md)")
        connection = await asyncpg.connect(dsn, timeout=5)
    except (LookupError, OSError, asyncpg.PostgresError, TimeoutError) as error:
        reason = f"no PostgreSQL reachable for this test: {error}"
        if (
            os.environ.get("PROMPTUS_REQUIRE_SHARED") == "1"
        ):  # CI starts one: skipping would hide a failure
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        for table in COLUMNS:
            await connection.execute(f"DROP TABLE IF EXISTS {table}")
        yield dsn
    finally:
        await connection.close()
