"""Malicious clients (oversized frames, garbage bytes, floods, broken handshakes) against a real server.

After each attack an ordinary viewer must still stream the whole ladder correctly.
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from aiohttp.test_utils import TestServer

from prompts.ladder import Ladder
from server.client import ServerClosed, ViewerClient
from server.keys import settings_key
from tests.server.conftest import STREAM, Connect, StartServer
from tests.server.raw_socket import masked_frame, raw_websocket, read_until_closed
from wire.errors import ErrorCode
from wire.framing import ErrorMessage
from wire.media import MAX_FRAME_SERVER_RECEIVES, Get


async def assert_streams_correctly(connect: Connect, server: TestServer) -> None:
    """A normal viewer gets every chunk of every level, byte for byte."""
    viewer = await connect(server)
    manifest, _ = await viewer.hello("sky")
    ladder = Ladder(server.app[settings_key].media_dir / "sky")
    for level in range(len(manifest["levels"])):
        for index in range(STREAM.chunk_count):
            message = await viewer.get(index, level, prefix=index > 0)
            assert message.data == ladder.chunk_bytes(level, index)
    await viewer.close()


async def test_frame_over_the_socket_limit_is_cut(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server()
    viewer = await connect(server)
    await viewer.hello("sky")
    await viewer.ws.send_bytes(bytes(MAX_FRAME_SERVER_RECEIVES + 1))
    with pytest.raises(ServerClosed):
        await viewer.receive()
    assert viewer.close_code == 1009
    await assert_streams_correctly(connect, server)


async def test_frame_announcing_a_huge_length_is_cut(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server()
    reader, writer = await raw_websocket(server.host, server.port)
    writer.write(masked_frame(0x2, b"x" * 10, length_override=2**62))
    await writer.drain()
    await read_until_closed(reader)  # the server hangs up instead of waiting for 4 EiB
    writer.close()
    await assert_streams_correctly(connect, server)


async def test_garbage_after_the_handshake(start_server: StartServer, connect: Connect) -> None:
    server = await start_server()
    rng = random.Random(5)
    for _ in range(5):
        reader, writer = await raw_websocket(server.host, server.port)
        writer.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 3000))))
        await writer.drain()
        writer.close()
    reader, writer = await raw_websocket(server.host, server.port)
    writer.write(
        masked_frame(0x1, b'{"type":"get"', fin=False) + masked_frame(0x9, b"p" * 200)
    )  # oversized ping
    await writer.drain()
    await read_until_closed(reader)
    writer.close()
    await assert_streams_correctly(connect, server)


async def test_garbage_instead_of_http(start_server: StartServer, connect: Connect) -> None:
    server = await start_server()
    for payload in (
        os.urandom(4096),
        b"GET /ws HTTP/1.1\r\n" + b"X: " + b"y" * 100_000 + b"\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(payload)
        await writer.drain()
        answer = await read_until_closed(reader)  # a 400 answer, then the server hangs up
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:40]
        writer.close()
    await assert_streams_correctly(connect, server)


async def test_invalid_utf8_text_frame(start_server: StartServer, connect: Connect) -> None:
    server = await start_server()
    reader, writer = await raw_websocket(server.host, server.port)
    writer.write(masked_frame(0x1, b'{"type":"\xff\xfe"}'))
    await writer.drain()
    await read_until_closed(reader)  # aiohttp closes with 1007 (invalid data)
    writer.close()
    await assert_streams_correctly(connect, server)


async def test_flood_is_rate_limited_while_others_stream(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server(rate_per_s=50.0, rate_burst=50)
    flooder = await connect(server)
    await flooder.hello("sky")
    request = Get(chunk=0, level=0).encode()

    async def flood() -> None:
        for _ in range(2000):
            await flooder.ws.send_str(request)

    await asyncio.gather(flood(), assert_streams_correctly(connect, server))
    codes: list[str] = []
    while True:
        try:
            message = await flooder.receive(timeout=0.5)
        except TimeoutError:
            break
        if isinstance(message, ErrorMessage):
            codes.append(message.code)
    assert ErrorCode.RATE_LIMITED in codes


async def test_many_bad_messages_then_good_ones_on_one_connection(
    server: TestServer, connect: Connect
) -> None:
    viewer = await connect(server)
    rng = random.Random(11)
    junk = [
        '{"type":"get","chunk":-1,"level":0}',
        "null",
        '{"type":"hello","version":1,"channel":"../../etc"}',
        '{"type":"stats"}',
        '{"type":"ack","chunk":1e400,"level":0}',
        "\x00" * 50,
    ]
    for _ in range(30):
        await viewer.ws.send_str(rng.choice(junk))
        message = await viewer.receive()
        assert isinstance(message, ErrorMessage)
    await viewer.hello("sky")
    assert (await viewer.get(3, 1, prefix=True)).chunk == 3


async def test_abandoned_handshakes_and_connections(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server(max_viewers=50)
    writers = []
    for _ in range(20):
        _, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # never finishes the request
        writers.append(writer)
    viewers: list[ViewerClient] = [await connect(server) for _ in range(20)]
    for viewer in viewers[:10]:
        viewer.ws._response.connection.transport.abort()  # vanish without a close frame
    await assert_streams_correctly(connect, server)
    for writer in writers:
        writer.close()


async def test_client_that_never_reads_is_dropped(
    start_server: StartServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """A viewer that requests chunks but never reads them fills the socket; the server must not wait forever."""
    caplog.set_level("INFO", logger="server.viewer")
    server = await start_server(send_timeout_s=0.5, rate_per_s=100_000.0, rate_burst=100_000)
    reader, writer = await raw_websocket(server.host, server.port)
    writer.write(masked_frame(0x1, b'{"type":"hello","version":1,"channel":"sky"}'))
    request = masked_frame(0x1, Get(chunk=1, level=1).encode().encode())
    for _ in range(5000):  # about 50 MB of answers, far beyond the socket buffers
        writer.write(request)
    await writer.drain()
    await asyncio.sleep(1.5)  # the server is blocked in send, then gives up after 0.5 s
    from server.keys import metrics_key

    assert server.app[metrics_key].viewers == 0
    assert "dropping a slow viewer" in caplog.text
    writer.close()
    await assert_streams_correctly(connect, server)
