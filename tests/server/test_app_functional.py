"""The media server through real sockets: the whole protocol and every error code it sends."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from prompts.chunk import PromptChunk, encode_chunk, make_prefix, parse_chunk
from prompts.ladder import Ladder
from server.client import ServerClosed, ServerError, ViewerClient
from server.keys import catalog_key, metrics_key
from tests.prompts.factories import random_keyframe
from tests.server.conftest import (
    STREAM,
    Connect,
    HandClock,
    StartServer,
    append_chunk,
    rescanned,
    write_ladder,
)
from wire.errors import ErrorCode
from wire.framing import ErrorMessage
from wire.media import ChunkMessage, Get, InitStateMessage, ManifestMessage, Stats


async def expect_error(viewer: ViewerClient, code: ErrorCode) -> ErrorMessage:
    with pytest.raises(ServerError) as info:
        await viewer.answer()
    assert info.value.code is code, info.value
    return info.value.error


async def test_hello_sends_manifest_then_init_state(connect: Connect, media: Path) -> None:
    viewer = await connect()
    manifest, init_state = await viewer.hello("sky", abr="bba", user_agent="pytest")
    assert manifest == json.loads((media / "sky" / "manifest.json").read_text())
    assert init_state == (media / "sky" / "init.bin").read_bytes()


async def test_every_chunk_of_every_level_is_the_file(connect: Connect, media: Path) -> None:
    viewer = await connect()
    manifest, _ = await viewer.hello("sky")
    ladder = Ladder(media / "sky")
    for level in manifest["levels"]:
        for index in range(manifest["chunk_count"]):
            message = await viewer.get(index, level["id"])
            assert (message.channel, message.level, message.chunk) == ("sky", level["id"], index)
            assert message.prefix == b""
            assert message.data == ladder.chunk_bytes(level["id"], index)


async def test_switch_prefix_is_last_keyframe_of_previous_chunk(
    connect: Connect, media: Path
) -> None:
    viewer = await connect()
    await viewer.hello("sky")
    ladder = Ladder(media / "sky")
    message = await viewer.get(2, 1, prefix=True)
    expected = encode_chunk(make_prefix(parse_chunk(ladder.chunk_bytes(1, 1))))
    assert message.prefix == expected
    prefix = parse_chunk(message.prefix)
    assert prefix.is_prefix and prefix.keyframes[0].frame == 2 * STREAM.chunk_frames
    assert message.data == ladder.chunk_bytes(1, 2)
    first = await viewer.get(0, 1, prefix=True)  # chunk 0 needs no prefix
    assert first.prefix == b""


async def test_requests_before_hello_are_refused(connect: Connect) -> None:
    viewer = await connect()
    await viewer.ws.send_str(Get(chunk=0, level=0).encode())
    error = await expect_error(viewer, ErrorCode.HELLO_REQUIRED)
    assert (error.chunk, error.level) == (0, 0)
    await viewer.stats(Stats(buffer_s=1, stalls=0, stall_s=0, level=0))
    await expect_error(viewer, ErrorCode.HELLO_REQUIRED)
    await viewer.hello("sky")  # the connection goes on
    assert (await viewer.get(0, 0)).chunk == 0


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        ("nope", ErrorCode.UNKNOWN_CHANNEL),
        ("../sky", ErrorCode.BAD_FIELD),
        ("..", ErrorCode.BAD_FIELD),
        ("sky/../sky", ErrorCode.BAD_FIELD),
        ("/etc", ErrorCode.BAD_FIELD),
    ],
)
async def test_unknown_and_traversing_channels(
    connect: Connect, channel: str, code: ErrorCode
) -> None:
    viewer = await connect()
    with pytest.raises(ServerError) as info:
        await viewer.hello(channel)
    assert info.value.code is code
    await viewer.hello("sky")


async def test_unknown_level_and_chunk_keep_the_connection(connect: Connect) -> None:
    viewer = await connect()
    await viewer.hello("sky")
    await viewer.ws.send_str(Get(chunk=0, level=7).encode())
    error = await expect_error(viewer, ErrorCode.UNKNOWN_LEVEL)
    assert (error.chunk, error.level) == (0, 7)
    await viewer.ws.send_str(Get(chunk=STREAM.chunk_count, level=0).encode())
    await expect_error(viewer, ErrorCode.UNKNOWN_CHUNK)
    assert (await viewer.get(1, 0)).chunk == 1


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{oops", ErrorCode.BAD_MESSAGE),
        ("[]", ErrorCode.BAD_MESSAGE),
        ('{"type": "manifest"}', ErrorCode.UNKNOWN_TYPE),
        ('{"kind": "get"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "get", "chunk": "0", "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "chunk": 0, "level": 0, "prefix": "yes"}', ErrorCode.BAD_FIELD),
        (b"\x00\x01binary", ErrorCode.BAD_MESSAGE),
        ('{"type": "stats", "pad": "' + "x" * 20_000 + '"}', ErrorCode.MESSAGE_TOO_LARGE),
    ],
)
async def test_bad_messages_get_errors_and_the_connection_goes_on(
    connect: Connect, frame: str | bytes, code: ErrorCode
) -> None:
    viewer = await connect()
    await viewer.hello("sky")
    if isinstance(frame, bytes):
        await viewer.ws.send_bytes(frame)
    else:
        await viewer.ws.send_str(frame)
    await expect_error(viewer, code)
    assert (await viewer.get(0, 0)).chunk == 0


async def test_other_protocol_version_is_told_and_closed(connect: Connect) -> None:
    viewer = await connect()
    with pytest.raises(ServerError) as info:
        await viewer.hello("sky", version=2)
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert "speaks 1" in info.value.error.message
    with pytest.raises(ServerClosed):
        await viewer.receive()
    assert viewer.close_code == 1002


async def test_live_ladder_grows_without_restart(
    start_server: StartServer, connect: Connect, media: Path
) -> None:
    writer = write_ladder(media / "live", chunks=1, finish=False)
    server = await start_server()
    viewer = await connect(server)
    manifest, _ = await viewer.hello("live")
    assert manifest["live"] and manifest["chunk_count"] == 1
    await viewer.ws.send_str(Get(chunk=1, level=0).encode())
    await expect_error(viewer, ErrorCode.NOT_AVAILABLE)
    await viewer.ws.send_str(
        Get(chunk=2, level=0).encode()
    )  # within 3 of the edge, stream has 4 chunks
    await expect_error(viewer, ErrorCode.NOT_AVAILABLE)
    append_chunk(writer, 1)
    await rescanned(server)
    await viewer.ws.send_str(Get(chunk=1, level=0).encode())
    resent = await viewer.receive()  # the changed manifest comes first
    assert isinstance(resent, ManifestMessage) and resent.manifest["chunk_count"] == 2
    assert isinstance(await viewer.answer(), ChunkMessage)
    append_chunk(writer, 2)
    append_chunk(writer, 3)
    writer.finish()
    await rescanned(server)
    assert (await viewer.get(3, 1, prefix=True)).chunk == 3
    assert viewer.manifest is not None and viewer.manifest["chunk_count"] == 4
    assert viewer.manifest["live"] is False


async def test_far_beyond_the_live_edge(
    start_server: StartServer, connect: Connect, media: Path
) -> None:
    write_ladder(
        media / "long", chunks=1, finish=False, stream=replace(STREAM, frames=201)
    )  # 11 chunks
    server = await start_server()
    viewer = await connect(server)
    await viewer.hello("long")
    await viewer.ws.send_str(Get(chunk=3, level=0).encode())
    await expect_error(viewer, ErrorCode.NOT_AVAILABLE)
    await viewer.ws.send_str(Get(chunk=4, level=0).encode())
    await expect_error(viewer, ErrorCode.BEYOND_LIVE_EDGE)
    await viewer.ws.send_str(Get(chunk=11, level=0).encode())
    await expect_error(viewer, ErrorCode.UNKNOWN_CHUNK)


async def test_live_window_and_gaps(
    start_server: StartServer, connect: Connect, media: Path
) -> None:
    """Chunks before the window are refused, a gap is refused, the chunk after a gap is closed
    (needs no prefix), and a sliding window keeps the cache generation."""
    stream = replace(STREAM, frames=20)
    writer = write_ladder(media / "feed", chunks=1, finish=False, stream=stream)
    for index in (1, 2):
        writer.grow(20 * (index + 1))
        append_chunk(writer, index)
    writer.grow(80)
    writer.append_gap(0, 3)
    append_chunk(writer, 3, level_ids=(1,))  # level 1 has chunk 3; level 0's is a gap
    writer.grow(100)
    # the chunk after the gap starts cold: it holds the keyframe at its own first frame
    closed = PromptChunk(
        generator_id=STREAM.generator_id, level=0, index=4, frame_start=80, frame_end=100,
        interval=10, rank=2, keyframes=tuple(random_keyframe(f, 2) for f in (80, 90, 99)),
    )  # fmt: skip
    writer.append_chunk(0, closed)
    append_chunk(writer, 4, level_ids=(1,))
    server = await start_server()
    viewer = await connect(server)
    manifest, _ = await viewer.hello("feed")
    assert manifest["version"] == 2 and manifest["chunk_count"] == 5
    content = server.app[catalog_key].get("feed").content
    await viewer.ws.send_str(Get(chunk=3, level=0).encode())
    await expect_error(viewer, ErrorCode.GAP)
    assert (await viewer.get(3, 1, prefix=True)).prefix  # the other level has chunk 3
    after_gap = await viewer.get(4, 0, prefix=True)
    assert after_gap.prefix == b"" and parse_chunk(after_gap.data).closed
    writer.slide_window(2)
    await rescanned(server)
    await viewer.ws.send_str(Get(chunk=1, level=0).encode())
    resent = await viewer.receive()
    assert isinstance(resent, ManifestMessage) and resent.manifest["window_start"] == 2
    await expect_error(viewer, ErrorCode.OUTSIDE_WINDOW)
    assert (await viewer.get(2, 0, prefix=True)).prefix  # chunk 1's file stays for this prefix
    assert server.app[catalog_key].get("feed").content == content  # a slide is no rewrite


async def test_new_channel_appears_without_restart(
    connect: Connect, media: Path, server: TestServer
) -> None:
    viewer = await connect()
    with pytest.raises(ServerError):
        await viewer.hello("fresh")
    shutil.copytree(media / "sky", media / "fresh")
    await rescanned(server)
    manifest, _ = await viewer.hello("fresh")
    assert manifest["chunk_count"] == STREAM.chunk_count


async def test_missing_chunk_file_is_a_named_error_not_a_crash(
    connect: Connect, media: Path
) -> None:
    (media / "sky" / "r2n10" / "00002.chunk").unlink()
    viewer = await connect()
    await viewer.hello("sky")
    await viewer.ws.send_str(Get(chunk=2, level=0).encode())
    error = await expect_error(viewer, ErrorCode.MEDIA_UNREADABLE)
    assert "chunk 2" in error.message
    assert (await viewer.get(1, 0)).chunk == 1


async def test_rate_limit_drops_excess_and_keeps_serving(
    start_server: StartServer, connect: Connect
) -> None:
    clock = HandClock()
    server = await start_server(rate_per_s=5.0, rate_burst=5, clock=clock)
    viewer = await connect(server)
    await viewer.hello("sky")  # 1 token used
    for _ in range(20):
        await viewer.ws.send_str(Get(chunk=0, level=0).encode())
    kinds: list[str] = []
    while True:
        try:
            message = await viewer.receive(timeout=0.5)
        except TimeoutError:
            break
        kinds.append(message.code if isinstance(message, ErrorMessage) else message.TYPE)
    assert kinds.count("chunk") == 4 and kinds.count(ErrorCode.RATE_LIMITED) == 1
    assert server.app[metrics_key].dropped_messages_total == 16
    clock.advance(0.5)  # 2.5 tokens back
    assert (await viewer.get(1, 0)).chunk == 1


async def test_viewer_limit(start_server: StartServer, connect: Connect) -> None:
    server = await start_server(max_viewers=2)
    first, second = await connect(server), await connect(server)
    third = await connect(server)
    message = await third.receive()
    assert isinstance(message, ErrorMessage) and message.code is ErrorCode.SERVER_FULL
    with pytest.raises(ServerClosed):
        await third.receive()
    assert third.close_code == 1013
    await first.hello("sky")
    await second.hello("sky")
    await first.close()
    for _ in range(500):  # until the server has seen the close (at most 5 s)
        if server.app[metrics_key].viewers < 2:
            break
        await asyncio.sleep(0.01)
    fourth = await connect(server)
    await fourth.hello("sky")


async def test_idle_viewer_is_closed(start_server: StartServer, connect: Connect) -> None:
    clock = HandClock()
    server = await start_server(idle_timeout_s=60.0, idle_check_s=1.0, clock=clock)
    viewer = await connect(server)
    await viewer.hello("sky")
    await viewer.get(0, 0, ack=False)  # answered: the server heard it before the clock moves
    clock.advance(59.0)
    await asyncio.sleep(1.5)  # the server looks at its clock at least once a second
    assert server.app[metrics_key].viewers == 1  # 59 s of silence: not yet
    clock.advance(2.0)
    message = await viewer.receive(timeout=3)
    assert isinstance(message, ErrorMessage) and message.code is ErrorCode.IDLE_TIMEOUT
    with pytest.raises(ServerClosed):
        await viewer.receive()
    assert viewer.close_code == 1000


async def test_graceful_shutdown_tells_viewers(start_server: StartServer, connect: Connect) -> None:
    server = await start_server()
    viewers = [await connect(server) for _ in range(3)]
    for viewer in viewers:
        await viewer.hello("sky")
    await server.close()
    for viewer in viewers:
        message = await viewer.receive(timeout=5)
        assert isinstance(message, ErrorMessage) and message.code is ErrorCode.GOING_AWAY
        with pytest.raises(ServerClosed):
            await viewer.receive(timeout=5)
        assert viewer.close_code == 1001


async def test_healthz_metrics_and_player(
    server: TestServer, connect: Connect, http: aiohttp.ClientSession
) -> None:
    viewer = await connect()
    await viewer.hello("sky")
    await viewer.get(0, 0, prefix=False)
    await viewer.get(1, 1, prefix=True)
    await viewer.ws.send_str(Get(chunk=0, level=9).encode())
    await expect_error(viewer, ErrorCode.UNKNOWN_LEVEL)
    async with http.get(server.make_url("/healthz")) as response:
        assert response.status == 200
        assert await response.json() == {
            "status": "ok",
            "channels": 1,
            "viewers": 1,
            "bad_channels": {},
        }
    async with http.get(server.make_url("/channels")) as response:
        listed = (await response.json())["channels"]
    assert [c["name"] for c in listed] == ["sky"]
    assert listed[0]["generator"]["id"] and listed[0]["levels"] >= 1 and listed[0]["seconds"] > 0
    async with http.get(server.make_url("/metrics")) as response:
        assert response.content_type == "text/plain"
        text = await response.text()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert samples["promptus_viewers"] == "1"
    assert samples["promptus_chunks_served_total"] == "2"
    assert samples["promptus_prefixes_served_total"] == "1"
    assert int(samples["promptus_bytes_sent_total"]) > 0
    assert samples['promptus_errors_total{code="unknown_level"}'] == "1"
    assert samples['promptus_messages_total{type="get"}'] == "3"
    async with http.get(server.make_url("/")) as response:
        assert response.status == 200 and "player" in await response.text()
    async with http.get(server.make_url("/player.js")) as response:
        assert response.status == 200
    for path in ("/../media/sky/manifest.json", "/%2e%2e/media/sky/manifest.json", "/sky/init.bin"):
        async with http.get(server.make_url(path)) as response:
            assert response.status in (403, 404), path


async def test_viewers_do_not_notice_each_other(connect: Connect) -> None:
    """One client spewing garbage while another streams: the streaming one sees only its answers."""
    good, bad = await connect(), await connect()
    await good.hello("sky")
    await bad.hello("sky")

    async def misbehave() -> None:
        for i in range(15):
            await bad.ws.send_str("{" * (i + 1))

    async def stream() -> list[ChunkMessage]:
        return [
            await good.get(index, index % 2, prefix=True) for index in range(STREAM.chunk_count)
        ]

    _, received = await asyncio.gather(misbehave(), stream())
    assert [m.chunk for m in received] == list(range(STREAM.chunk_count))


async def test_init_state_message_matches_ladder(connect: Connect, media: Path) -> None:
    viewer = await connect()
    await viewer.ws.send_str('{"type":"hello","version":1,"channel":"sky"}')
    assert isinstance(await viewer.receive(), ManifestMessage)
    message = await viewer.receive()
    assert isinstance(message, InitStateMessage) and message.channel == "sky"
    assert message.data == Ladder(media / "sky").init_state_bytes()


async def test_ladder_rewritten_in_place_is_served_fresh(
    connect: Connect, media: Path, server: TestServer
) -> None:
    viewer = await connect()
    await viewer.hello("sky")
    before = await viewer.get(1, 0, prefix=True)
    shutil.rmtree(media / "sky")
    write_ladder(media / "sky", seed=7)  # same sizes, other keyframes
    await rescanned(server)
    after = await viewer.get(1, 0, prefix=True)
    ladder = Ladder(media / "sky")
    assert after.data == ladder.chunk_bytes(0, 1) != before.data
    assert after.prefix == encode_chunk(make_prefix(parse_chunk(ladder.chunk_bytes(0, 0))))


async def test_shutdown_does_not_wait_for_viewers_that_never_answer(
    start_server: StartServer, connect: Connect
) -> None:
    """Viewers that never read (so never answer the close) must not hold up shutdown."""
    server = await start_server()
    for _ in range(3):
        await (await connect(server)).hello("sky")
    started = time.perf_counter()
    await server.close()
    assert time.perf_counter() - started < 5.0
