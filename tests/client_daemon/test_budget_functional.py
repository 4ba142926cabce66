"""Issue 13, rows 1 and 7 (daemon side): what a page may make a real ``promptus daemon``
allocate, how pages share its one generation thread, and ``busy``. Each test failed on the
code before the issue."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_daemon.client import DaemonClient, DaemonError
from client_daemon.ready import read_ready_file
from common.processes import Child
from prompts.chunk import PromptChunk, encode_chunk
from tests.client_daemon.helpers import make_chunk, open_message
from tests.prompts.factories import random_keyframe
from tests.web.stack import START_TIMEOUT_S, promptus_child
from wire.errors import ErrorCode

MAX_BATCH = 4  # frames a slice: a 60-frame group is 15 slices
MAX_SESSIONS = 3
HOSTILE_FRAMES = 60  # the longest group the default budget allows
MAX_CHUNK_FRAMES = 240  # the longest chunk it allows
RSS_SLACK_MIB = 96  # allocator noise after the hostile inputs, far below what they took before


@pytest.fixture(scope="module")
def daemon() -> Iterator[tuple[Child, str, str]]:
    """A tiny-generator daemon on the CPU: (process, url, generator id)."""
    ready = Path(tempfile.mkdtemp(prefix="promptus-budget-")) / "ready.json"
    args = ["daemon", "--port", "0", "--generator", "tiny", "--device", "cpu"]
    args += ["--max-batch", str(MAX_BATCH), "--max-sessions", str(MAX_SESSIONS)]
    child = promptus_child(
        "daemon", args + ["--ready-file", str(ready)], env={"OMP_NUM_THREADS": "1"}
    )
    try:
        announced = read_ready_file(child.wait_for_file(ready, START_TIMEOUT_S))
        yield child, announced.url, announced.generator_id
    finally:
        child.stop()


def process_status(pid: int) -> tuple[float, int]:
    """(resident MiB, threads) of a process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def long_chunk(
    generator_id: str, frames: int, group: int | None = None, tokens: int = 77, dim: int = 1024
) -> PromptChunk:
    """Chunk 0 of a stream of ``frames``-frame chunks with a keyframe every ``group`` frames
    (default: only at its two ends, one generation group of ``frames`` frames; ~150 bytes)."""
    group = group or frames
    keyframes = tuple(
        random_keyframe(p, 1, tokens=tokens, dim=dim) for p in range(0, frames + 1, group)
    )
    return PromptChunk(generator_id, 0, 0, 0, frames, group, 1, keyframes)


def overflowing_init_state() -> bytes:
    body = b"PRIS" + bytes([1, 0, 4, 0]) + struct.pack("<4I", *[65535] * 4) + struct.pack("<I", 0)
    return body + struct.pack("<I", zlib.crc32(body))


async def refused(call, code: ErrorCode, text: str) -> None:  # noqa: ANN001
    with pytest.raises(DaemonError) as caught:
        await call
    assert caught.value.error.code == code, caught.value.error
    assert text in caught.value.error.message, caught.value.error.message


async def open_stream(url: str, gid: str, chunk_frames: int = 4) -> DaemonClient:
    page = await DaemonClient.connect(url)
    request = open_message(gid)
    await page.open(
        dataclasses.replace(request.stream, chunk_frames=chunk_frames), request.init_state
    )
    return page


async def test_row1_the_budget_is_checked_before_anything_is_allocated(daemon) -> None:  # noqa: ANN001
    child, url, gid = daemon
    async with await open_stream(url, gid) as warm:  # a normal chunk first: the idle level
        await warm.send_chunk(0, 0, encode_chunk(make_chunk(0, gid)))
        await warm.chunk_segments()
    await asyncio.sleep(0.5)
    idle_mib, idle_threads = process_status(child.pid)

    async with await DaemonClient.connect(url) as page:
        request = open_message(gid)
        huge = dataclasses.replace(request.stream, chunk_frames=100_000)
        await refused(
            page.open(huge, request.init_state),
            ErrorCode.BAD_FIELD,
            "over this daemon's limit of 240",
        )
        await refused(
            page.open(request.stream, overflowing_init_state()),
            ErrorCode.BAD_FIELD,
            "size over limit",
        )
    async with await open_stream(url, gid) as page:  # contexts of 1024x4096 claimed by the chunk
        wide = long_chunk(gid, 4, tokens=1024, dim=4096)
        await page.send_chunk(0, 0, encode_chunk(wide))
        await refused(page.segment(), ErrorCode.BAD_CHUNK, "this generator takes 77x1024")
    async with await open_stream(url, gid, chunk_frames=200) as page:  # one group of 200 frames
        await page.send_chunk(0, 0, encode_chunk(long_chunk(gid, 200)))
        await refused(page.segment(), ErrorCode.BAD_CHUNK, "at most 60 frames between keyframes")
    page = await open_stream(url, gid, chunk_frames=HOSTILE_FRAMES)  # within budget, then it leaves
    await page.send_chunk(0, 0, encode_chunk(long_chunk(gid, HOSTILE_FRAMES)))
    await asyncio.sleep(1.0)
    await page.websocket.close()

    async with await open_stream(url, gid) as after:  # the daemon still serves, memory is back
        await after.send_chunk(0, 0, encode_chunk(make_chunk(0, gid)))
        await after.chunk_segments()
    await asyncio.sleep(0.5)
    rss_mib, threads = process_status(child.pid)
    assert rss_mib <= idle_mib + RSS_SLACK_MIB, (idle_mib, rss_mib)
    assert threads <= idle_threads + 2, (idle_threads, threads)


async def test_row1_pages_take_turns_slice_by_slice(daemon) -> None:  # noqa: ANN001
    """A page generating the longest chunk the budget allows (240 frames, groups of 60: 60
    slices) delays another page's 4-frame chunk by about one slice, not by its whole chunk."""
    _, url, gid = daemon
    hostile_chunk = long_chunk(gid, MAX_CHUNK_FRAMES, group=HOSTILE_FRAMES)
    async with (
        await open_stream(url, gid, chunk_frames=MAX_CHUNK_FRAMES) as hostile,
        await open_stream(url, gid) as polite,
    ):
        started = time.monotonic()
        await hostile.send_chunk(0, 0, encode_chunk(hostile_chunk))
        await asyncio.sleep(0.05)  # the hostile chunk holds the generation thread
        await polite.send_chunk(0, 0, encode_chunk(make_chunk(0, gid)))
        polite_sent = time.monotonic()
        await polite.chunk_segments()
        polite_s = time.monotonic() - polite_sent
        await hostile.chunk_segments()  # the whole chunk: 24 GOP segments
        hostile_s = time.monotonic() - started
    assert polite_s < 0.25 * hostile_s, (polite_s, hostile_s)  # before: about the whole of it


async def test_row7_busy_when_the_daemon_generates_its_maximum_of_streams(daemon) -> None:  # noqa: ANN001
    _, url, gid = daemon
    pages = [await open_stream(url, gid) for _ in range(MAX_SESSIONS)]
    try:
        request = open_message(gid)
        await pages[0].open(request.stream, request.init_state)  # a page may open again
        async with await DaemonClient.connect(url) as extra:
            await refused(
                extra.open(request.stream, request.init_state), ErrorCode.BUSY, "--max-sessions"
            )
            await pages.pop().websocket.close()
            for _ in range(50):  # its slot comes back once the daemon saw it leave
                try:
                    await extra.open(request.stream, request.init_state)
                    break
                except DaemonError as error:
                    assert error.error.code == ErrorCode.BUSY
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the slot of a page that left never came back")
    finally:
        for page in pages:
            await page.websocket.close()
