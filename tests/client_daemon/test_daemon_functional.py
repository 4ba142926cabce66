"""The daemon over real WebSockets: origins, sessions, segments, status and every bad input."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client_daemon.daemon import Daemon
from client_daemon.mp4 import mime_type, segment_decode_time, track_timescale
from client_daemon.settings import DaemonSettings
from engines.psnr import frames_psnr_db as psnr
from prompts.chunk import encode_chunk
from tests.client_daemon.helpers import (
    FPS,
    MIN_PSNR_VS_YUV420_DB,
    decode_fmp4,
    make_chunk,
    open_message,
    prefix_for,
    reference_frames,
    yuv420_reference,
)
from wire.daemon import (
    MAX_FRAME_DAEMON_RECEIVES,
    MAX_FRAME_PAGE_RECEIVES,
    InitSegment,
    MediaSegment,
    Seek,
    Status,
    parse_daemon_message,
)
from wire.errors import ErrorCode
from wire.framing import MAX_CONTROL_BYTES, ErrorMessage, encode_binary
from wire.media import encode_chunk_message

PAGE_ORIGIN = "http://127.0.0.1:8080"
REPLY_TIMEOUT_S = 120  # the tiny generator on two busy cores can take seconds per chunk


@pytest.fixture
async def daemon(tiny_generator) -> AsyncIterator[Daemon]:  # noqa: ANN001
    settings = DaemonSettings(port=0, allowed_origins=(PAGE_ORIGIN,), status_interval_s=0.2)
    async with Daemon(tiny_generator, settings) as running:
        yield running


def page(daemon: Daemon, origin: str | None = PAGE_ORIGIN) -> connect:
    return connect(
        daemon.url,
        origin=origin,
        max_size=MAX_FRAME_PAGE_RECEIVES,
        compression=None,  # type: ignore[arg-type]
    )


async def reply(ws: ClientConnection, *, status: bool = False):  # noqa: ANN201
    """The next init/segment/error (or status, when asked) the daemon sends."""
    async with asyncio.timeout(REPLY_TIMEOUT_S):
        while True:
            message = parse_daemon_message(await ws.recv())
            if isinstance(message, Status) != status:
                continue
            return message


async def error_reply(ws: ClientConnection, code: ErrorCode) -> ErrorMessage:
    message = await reply(ws)
    assert isinstance(message, ErrorMessage), message
    assert message.code == code, message
    return message


async def open_session(ws: ClientConnection, generator_id: str) -> InitSegment:
    await ws.send(open_message(generator_id).encode())
    init = await reply(ws)
    assert isinstance(init, InitSegment), init
    return init


async def send_chunk(
    ws: ClientConnection, generator_id: str, index: int, *, level: int = 0, prefix: bool = False
) -> None:
    data = encode_chunk(make_chunk(index, generator_id, level=level))
    prefix_bytes = encode_chunk(prefix_for(index, generator_id, level=level)) if prefix else b""
    await ws.send(encode_chunk_message("sky", level, index, data, prefix_bytes))


async def test_open_answers_the_init_segment_and_its_codec_string(
    daemon: Daemon, tiny_generator
) -> None:  # noqa: ANN001
    async with page(daemon) as ws:
        init = await open_session(ws, tiny_generator.generator_id)
    assert init.mime == mime_type(init.data)
    assert init.mime.startswith('video/mp4; codecs="avc1.')


@pytest.mark.slow
async def test_switch_and_seek_give_segments_on_the_stream_timeline(
    daemon: Daemon, tiny_generator
) -> None:  # noqa: ANN001
    """Level 0 chunk 0, switch to level 1 at chunk 1 (prefix), seek to chunk 3 of level 0."""
    gid = tiny_generator.generator_id
    plan = [(0, 0, False), (1, 1, True), (0, 3, True)]
    async with page(daemon) as ws:
        init = await open_session(ws, gid)
        segments = []
        for level, index, with_prefix in plan:
            if index == 3:
                await ws.send(Seek(chunk=3).encode())
            await send_chunk(ws, gid, index, level=level, prefix=with_prefix)
        for level, index, _ in plan:
            segment = await reply(ws)
            assert isinstance(segment, MediaSegment), segment
            assert (segment.level, segment.chunk) == (level, index)
            assert segment.generation_ms > 0 and segment.encode_ms > 0
            segments.append(segment)
        status = await reply(ws, status=True)
    assert status.device == "cpu" and status.generator_id == gid and status.fps > 0
    timescale = track_timescale(init.data)
    starts = [segment_decode_time(s.data) for s in segments]
    assert starts == [0, 4 * timescale // FPS, 12 * timescale // FPS]
    expected = reference_frames(tiny_generator, plan)
    # chunks 0 and 1 play back to back across the switch; chunk 3 sits where the seek put it
    for run, first_frame in (([segments[0], segments[1]], 0), ([segments[2]], 12)):
        decoded = decode_fmp4(init.data + b"".join(s.data for s in run))
        engine = [frame for s in run for frame in expected[(s.level, s.chunk)]]
        assert [round(f.time_s * FPS) for f in decoded] == list(
            range(first_frame, first_frame + len(engine))
        )
        assert [f.key for f in decoded].count(True) == len(run)
        for frame, rgb in zip(decoded, engine, strict=True):
            assert psnr(frame.rgb, yuv420_reference(rgb)) >= MIN_PSNR_VS_YUV420_DB


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9999", "null"])
async def test_foreign_origins_are_refused_with_a_reason(daemon: Daemon, origin: str) -> None:
    async with page(daemon, origin) as ws:
        refusal = await error_reply(ws, ErrorCode.FORBIDDEN_ORIGIN)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert f"origin {origin} not allowed" in refusal.message
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert "--allow-origin" in closed.value.rcvd.reason


async def test_a_local_program_without_origin_is_served(daemon: Daemon, tiny_generator) -> None:  # noqa: ANN001
    async with page(daemon, origin=None) as ws:
        await open_session(ws, tiny_generator.generator_id)


async def test_chunk_or_seek_before_open(daemon: Daemon, tiny_generator) -> None:  # noqa: ANN001
    async with page(daemon) as ws:
        await send_chunk(ws, tiny_generator.generator_id, 0)
        assert "before 'open'" in (await error_reply(ws, ErrorCode.OPEN_REQUIRED)).message
        await ws.send(Seek(chunk=2).encode())
        await error_reply(ws, ErrorCode.OPEN_REQUIRED)


async def test_open_refusals(daemon: Daemon, tiny_generator) -> None:  # noqa: ANN001
    gid = tiny_generator.generator_id
    async with page(daemon) as ws:
        await ws.send(open_message("sd-turbo:feedbeef").encode())
        mismatch = await error_reply(ws, ErrorCode.GENERATOR_MISMATCH)
        assert (
            "made for generator 'sd-turbo:feedbeef'" in mismatch.message and gid in mismatch.message
        )
        broken = open_message(gid)
        await ws.send(
            encode_binary(
                {
                    "type": "open",
                    "version": 1,
                    "stream": json.loads(json.dumps(broken.stream.to_fields())),
                },
                b"not an init state",
            )
        )
        assert "init state" in (await error_reply(ws, ErrorCode.BAD_FIELD)).message
        await ws.send(
            encode_binary(
                {
                    "type": "open",
                    "version": 1,
                    "stream": {**broken.stream.to_fields(), "width": 100},
                },
                broken.init_state,
            )
        )
        assert "multiple of 64" in (await error_reply(ws, ErrorCode.BAD_FIELD)).message
        await open_session(ws, gid)  # the connection is still good


async def test_bad_messages_get_errors_and_nothing_is_lost(daemon: Daemon, tiny_generator) -> None:  # noqa: ANN001
    gid = tiny_generator.generator_id
    async with page(daemon) as ws:
        await open_session(ws, gid)
        await ws.send("{not json")
        await error_reply(ws, ErrorCode.BAD_MESSAGE)
        await ws.send(json.dumps({"type": "dance"}))
        await error_reply(ws, ErrorCode.UNKNOWN_TYPE)
        await ws.send(b"\x00\x01")
        await error_reply(ws, ErrorCode.BAD_MESSAGE)
        await ws.send(json.dumps({"type": "seek", "chunk": "x" * (MAX_CONTROL_BYTES + 1)}))
        await error_reply(ws, ErrorCode.MESSAGE_TOO_LARGE)
        await ws.send(b"\x00\x00\x20\x00" + b"{" * 0x2000)  # 8 KiB header
        await error_reply(ws, ErrorCode.MESSAGE_TOO_LARGE)
        corrupt = encode_chunk(make_chunk(0, gid))[:-7]
        await ws.send(encode_chunk_message("sky", 0, 0, corrupt))
        bad = await error_reply(ws, ErrorCode.BAD_CHUNK)
        assert (bad.chunk, bad.level) == (0, 0) and "not a valid prompt chunk" in bad.message
        await send_chunk(ws, gid, 2)
        assert "cannot start the session" in (await error_reply(ws, ErrorCode.BAD_CHUNK)).message
        other = make_chunk(0, "tiny:another")
        await ws.send(encode_chunk_message("sky", 0, 0, encode_chunk(other)))
        await error_reply(ws, ErrorCode.GENERATOR_MISMATCH)
        await send_chunk(ws, gid, 0)  # after all that, the right chunk still plays
        segment = await reply(ws)
        assert isinstance(segment, MediaSegment) and segment.chunk == 0


async def test_a_frame_over_the_socket_limit_closes_only_that_page(
    daemon: Daemon, tiny_generator
) -> None:  # noqa: ANN001
    async with page(daemon) as other:
        big = await page(daemon)
        await big.send(b"\x00" * (MAX_FRAME_DAEMON_RECEIVES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await reply(big)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await big.wait_closed()  # closed by the daemon; no close() from this side
        await open_session(other, tiny_generator.generator_id)


def _engine_streams() -> int:
    from engines.stream import GeneratorStream

    gc.collect()
    return sum(type(o) is GeneratorStream for o in gc.get_objects())  # no __instancecheck__ calls


async def test_a_page_leaving_mid_chunk_harms_no_one(daemon: Daemon, tiny_generator) -> None:  # noqa: ANN001
    """It leaves with more chunks sent than its queue holds: the reader must not stay stuck."""
    gid = tiny_generator.generator_id
    before = _engine_streams()
    async with page(daemon) as leaving:
        await open_session(leaving, gid)
        for index in range(4):
            await send_chunk(leaving, gid, index)
        await leaving.send(Seek(chunk=0).encode())
        for index in range(4):
            await send_chunk(leaving, gid, index)
    async with page(daemon) as staying:  # served while the leaver's chunk may still be generating
        await open_session(staying, gid)
        await send_chunk(staying, gid, 0)
        segment = await reply(staying)
        assert isinstance(segment, MediaSegment) and segment.chunk == 0
    for _ in range(100):  # the leaver's handler ends once its running chunk is done
        if _engine_streams() == before:
            break
        await asyncio.sleep(0.2)
    assert _engine_streams() == before, "a closed page's engine stream must be released"


async def test_a_page_that_stops_reading_does_not_hold_up_another(
    daemon: Daemon, tiny_generator
) -> None:  # noqa: ANN001
    gid = tiny_generator.generator_id
    async with page(daemon) as stuck, page(daemon) as reader:
        await open_session(stuck, gid)
        for index in range(4):  # more than its queue holds; it never reads the segments
            await send_chunk(stuck, gid, index)
        await open_session(reader, gid)
        await send_chunk(reader, gid, 0)
        segment = await reply(reader)
        assert isinstance(segment, MediaSegment) and segment.chunk == 0
