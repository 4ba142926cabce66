"""Issue 13, rows 2, 4, 5 and 7 (server side): a hostile client and a hostile media folder meet
a real ``promptus serve`` process on loopback. Each test failed on the code before the issue."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from common.processes import Child
from prompts.ladder import Ladder, chunk_relpath
from server.client import ServerClosed, ServerError, ViewerClient
from tests.server.conftest import STREAM, append_chunk, write_ladder
from tests.server.raw_socket import masked_frame, raw_websocket, read_until_closed, server_frames
from tests.server.serve_process import running_server
from wire.errors import ErrorCode
from wire.media import Hello, Stats

MAX_PER_ADDRESS = 4
BIG_MANIFEST_BYTES = 7_000_000  # row 5: a 50-byte hello answered with 7 MB
PING_BURST = 40  # the server's default rate burst (rate 20/s)
HOST = "127.0.0.1"


def edit_manifest(ladder: Path, change) -> None:  # noqa: ANN001
    path = ladder / "manifest.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def overflowing_init_state() -> bytes:
    """An init.bin whose header claims dims 65535^4 (the product overflows int64)."""
    body = b"PRIS" + bytes([1, 0, 4, 0]) + struct.pack("<4I", *[65535] * 4) + struct.pack("<I", 0)
    return body + struct.pack("<I", zlib.crc32(body))


def hostile_media(root: Path) -> Path:
    """A media folder with the good channel ``sky`` and one ladder per hostile input."""
    media = root / "media"
    write_ladder(media / "sky")
    level, size = "r2n10", (media / "sky" / chunk_relpath("r2n10", 1)).stat().st_size
    # row 4: a chunk that is /dev/zero; a chunk that is a file outside the media folder
    shutil.copytree(media / "sky", media / "zero")
    (media / "zero" / chunk_relpath(level, 1)).unlink()
    (media / "zero" / chunk_relpath(level, 1)).symlink_to("/dev/zero")
    secret = root / "outside-secret.bin"
    secret.write_bytes(b"S" * size)
    shutil.copytree(media / "sky", media / "escape")
    (media / "escape" / chunk_relpath(level, 1)).unlink()
    (media / "escape" / chunk_relpath(level, 1)).symlink_to(secret)
    shutil.copytree(media / "sky", media / "pipe")  # a chunk that is a FIFO inside the ladder
    (media / "pipe" / chunk_relpath(level, 1)).unlink()
    os.mkfifo(media / "pipe" / chunk_relpath(level, 1))
    # row 4: manifest.json as /dev/zero and as a FIFO
    shutil.copytree(media / "sky", media / "zeromanifest")
    (media / "zeromanifest" / "manifest.json").unlink()
    (media / "zeromanifest" / "manifest.json").symlink_to("/dev/zero")
    shutil.copytree(media / "sky", media / "fifo")
    (media / "fifo" / "manifest.json").unlink()
    os.mkfifo(media / "fifo" / "manifest.json")
    # row 5: chunk_count above the listed chunks, width 8, init dims overflowing, 7 MB manifest
    shutil.copytree(media / "sky", media / "gaps")
    edit_manifest(media / "gaps", lambda d: d["levels"][0]["chunks"].pop())
    shutil.copytree(media / "sky", media / "narrow")
    edit_manifest(media / "narrow", lambda d: d.update(width=8))
    shutil.copytree(media / "sky", media / "overflow")
    data = overflowing_init_state()
    (media / "overflow" / "init.bin").write_bytes(data)
    info = {"file": "init.bin", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    edit_manifest(media / "overflow", lambda d: d.update(init_state=info))
    shutil.copytree(media / "sky", media / "big")
    edit_manifest(media / "big", lambda d: d.update(padding="x" * BIG_MANIFEST_BYTES))
    return media


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Child, int]]:
    media = hostile_media(tmp_path_factory.mktemp("hostile"))
    args = ["--telemetry", "off", "--max-per-address", str(MAX_PER_ADDRESS)]
    with running_server(media, *args) as (child, port):
        yield media, child, port


async def viewer(port: int, session: aiohttp.ClientSession) -> ViewerClient:
    return await ViewerClient.connect(session, f"ws://{HOST}:{port}/ws")


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        / 1024
    )


async def test_row2_one_address_cannot_take_every_socket(server) -> None:  # noqa: ANN001
    _, _, port = server
    async with aiohttp.ClientSession() as http:
        held = [await viewer(port, http) for _ in range(MAX_PER_ADDRESS)]
        for client in held:
            await client.hello("sky")
        extra = await viewer(port, http)
        with pytest.raises(ServerError) as refused:
            await extra.answer()
        assert refused.value.code == ErrorCode.SERVER_FULL
        assert (
            f"{MAX_PER_ADDRESS} connections, the limit per address" in refused.value.error.message
        )
        with pytest.raises(ServerClosed):
            await extra.receive()
        assert extra.close_code == 1013
        # another address is served meanwhile, and a freed socket can be taken again
        other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
        async with other:
            elsewhere = await viewer(port, other)
            await elsewhere.hello("sky")
            await elsewhere.close()
        await held.pop().close()
        again = await viewer(port, http)
        await again.hello("sky")
        for client in [*held, again]:
            await client.close()


async def test_row4_media_files_are_read_only_when_they_are_what_they_claim(server) -> None:  # noqa: ANN001
    media, child, port = server
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{HOST}:{port}/healthz") as response:
            health = await response.json()
        assert "outside the media folder" in health["bad_channels"]["zeromanifest"]
        assert "not a regular file" in health["bad_channels"]["fifo"]
        client = await viewer(port, http)
        for channel, reason in (
            ("zero", "outside the media"),
            ("escape", "outside the media"),
            ("pipe", "not a regular file"),
        ):
            await client.hello(channel)
            started = time.monotonic()
            with pytest.raises(ServerError) as refused:
                await client.get(1, 0)
            assert (
                refused.value.code == ErrorCode.MEDIA_UNREADABLE
                and reason in refused.value.error.message
            )
            assert time.monotonic() - started < 5.0
            assert (await client.get(0, 0)).data == Ladder(media / "sky").chunk_bytes(0, 0)
        await client.close()
        assert rss_mib(child.pid) < 400  # the /dev/zero chunk was never read (1.18 GB before)
        shutil.copytree(media / "sky", media / "late")  # scans go on: a new channel appears
        for _ in range(100):
            async with http.get(f"http://{HOST}:{port}/healthz") as response:
                if (await response.json())["channels"] == 6:  # sky zero escape pipe big late
                    break
            await asyncio.sleep(0.1)
        late = await viewer(port, http)
        await late.hello("late")
        await late.close()


async def test_row5_manifests_are_checked_against_what_server_and_daemon_rely_on(server) -> None:  # noqa: ANN001
    _, _, port = server
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{HOST}:{port}/healthz") as response:
            problems = (await response.json())["bad_channels"]
        async with http.get(f"http://{HOST}:{port}/metrics") as response:
            metrics = await response.text()
        assert f"promptus_bad_channels {len(problems)}" in metrics and len(problems) == 5
        assert "lists chunks up to 3, chunk_count says 4" in problems["gaps"]
        assert "multiple of 64" in problems["narrow"]
        assert "size over limit" in problems["overflow"]
        client = await viewer(port, http)
        for channel in ("gaps", "narrow", "overflow"):
            with pytest.raises(ServerError) as refused:
                await client.hello(channel)
            assert refused.value.code == ErrorCode.UNKNOWN_CHANNEL
        await client.close()
    # the 7 MB manifest: an address gets two (the burst), then its byte budget says no
    other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.3", 0)))
    async with other:
        client = await viewer(port, other)
        for _ in range(2):
            manifest, _ = await client.hello("big")
            assert len(manifest["padding"]) == BIG_MANIFEST_BYTES
        with pytest.raises(ServerError) as refused:
            await client.hello("big")
        assert refused.value.code == ErrorCode.RATE_LIMITED
        assert "manifest bytes" in refused.value.error.message
        await client.close()


async def test_row7_unmasked_client_frames_are_refused(server) -> None:  # noqa: ANN001
    _, _, port = server
    reader, writer = await raw_websocket(HOST, port)
    hello = Hello(channel="sky").encode().encode()
    writer.write(masked_frame(0x1, hello, masked=False))
    await writer.drain()
    frames = server_frames(await read_until_closed(reader))
    writer.close()
    assert frames and frames[-1][0] == 0x8  # a close frame, and nothing answered the hello
    assert struct.unpack(">H", frames[-1][1][:2])[0] == 1002
    assert all(opcode == 0x8 for opcode, _ in frames)


async def test_row7_pings_share_the_message_rate(server) -> None:  # noqa: ANN001
    _, _, port = server
    reader, writer = await raw_websocket(HOST, port)
    started = time.monotonic()
    writer.write(b"".join(masked_frame(0x9, b"p") for _ in range(1000)))
    await writer.drain()
    data = b""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2.0):
            while chunk := await reader.read(65536):
                data += chunk
    elapsed = time.monotonic() - started
    pongs = sum(opcode == 0xA for opcode, _ in server_frames(data))
    writer.close()
    assert 0 < pongs <= PING_BURST + 20 * elapsed + 2  # 1000 before the issue


async def test_row7_no_versions_in_the_server_header(server) -> None:  # noqa: ANN001
    _, _, port = server
    answers = []
    for request in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /no-such-file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"\x16\x03\x01 not http at all\r\n\r\n",  # aiohttp's own 400 page
    ):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(request)
        await writer.drain()
        answers.append(
            await read_until_closed(reader)
            if b"healthz" not in request
            else await reader.read(4096)
        )
        writer.close()
    handshake_reader, handshake_writer = await raw_websocket(HOST, port)
    handshake_writer.close()
    for answer in answers:
        headers = answer.split(b"\r\n\r\n")[0].lower()
        assert b"\r\nserver: promptus" in headers, headers
        assert b"aiohttp" not in headers and b"python" not in headers


async def test_row4_sigterm_ends_the_server_with_a_fifo_in_the_media_folder(tmp_path: Path) -> None:
    media = tmp_path / "media"
    write_ladder(media / "sky")
    shutil.copytree(media / "sky", media / "fifo")
    (media / "fifo" / "manifest.json").unlink()
    os.mkfifo(media / "fifo" / "manifest.json")
    with running_server(media, "--telemetry", "off") as (child, port):
        async with aiohttp.ClientSession() as http:
            client = await viewer(port, http)
            await client.hello("sky")  # the catalog is not frozen
            await client.close()
        await asyncio.sleep(1.5)  # a few rescans pass the FIFO again
        child.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(child.process.wait, 20) == 0


async def test_row7_the_python_client_raises_server_closed_after_kill_9(tmp_path: Path) -> None:
    media = tmp_path / "media"
    write_ladder(media / "sky")
    with running_server(media, "--telemetry", "off") as (child, port):
        async with aiohttp.ClientSession() as http:
            client = await viewer(port, http)
            await client.hello("sky")
            child.kill()
            report = Stats(buffer_s=1, stalls=0, stall_s=0, level=0)
            with pytest.raises(ServerClosed):
                for _ in range(20):  # sends only: the first may still land in a socket buffer
                    await client.stats(report)
                    await asyncio.sleep(0.1)
            with pytest.raises(ServerClosed):
                await client.get(0, 0)


async def test_issue29_a_switch_prefix_across_a_gap_is_refused_as_a_gap(tmp_path: Path) -> None:
    """Before issue 29: ``internal`` (and an error line) for the prefix of a chunk after a gap
    when that chunk is not closed (a ladder the live publisher would not write, but a folder
    may hold)."""
    media = tmp_path / "media"
    writer = write_ladder(
        media / "feed", chunks=1, finish=False, stream=dataclasses.replace(STREAM, frames=20)
    )
    writer.grow(40)
    writer.append_gap(0, 1)
    append_chunk(writer, 1, level_ids=(1,))
    writer.grow(60)
    append_chunk(writer, 2)  # level 0's chunk 2 needs chunk 1's last keyframe to switch to it
    with running_server(media, "--telemetry", "off") as (child, port):
        async with aiohttp.ClientSession() as http:
            client = await viewer(port, http)
            await client.hello("feed")
            with pytest.raises(ServerError) as refused:
                await client.get(2, 0, prefix=True)
            assert refused.value.code == ErrorCode.GAP
            assert "switch prefix would be the last keyframe of chunk 1, a gap" in str(
                refused.value
            )
            assert (await client.get(2, 0)).prefix == b""  # in sequence it needs none
            assert (await client.get(2, 1, prefix=True)).prefix  # the other level has chunk 1
            await client.close()
    assert "Traceback" not in child.output() and "internal" not in child.output()


async def test_issue29_an_unreadable_chunk_asked_for_again_and_again_logs_one_line(server) -> None:  # noqa: ANN001
    _, child, port = server
    async with aiohttp.ClientSession() as http:
        client = await viewer(port, http)
        await client.hello("pipe")
        for _ in range(30):  # within the rate limit's burst
            with pytest.raises(ServerError) as refused:
                await client.get(1, 0)
            assert refused.value.code == ErrorCode.MEDIA_UNREADABLE
        await client.close()
    await asyncio.sleep(0.3)
    assert sum("channel pipe: chunk 1" in line for line in child.lines) == 1
