"""Hand-made WebSocket traffic on plain TCP sockets: what a hostile client can send (malformed
HTTP requests: ``wire.testing``)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct


async def raw_websocket(
    host: str, port: int, *, local_host: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A hand-made WebSocket handshake on a plain TCP socket (so we can send anything after it),
    from ``local_host`` when given (any 127.x.y.z is this machine on Linux)."""
    local = (local_host, 0) if local_host else None
    reader, writer = await asyncio.open_connection(host, port, local_addr=local)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


def masked_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    length_override: int | None = None,
    masked: bool = True,
) -> bytes:
    """A client frame (masked, as RFC 6455 requires, unless ``masked=False``), optionally
    lying about its length."""
    length = len(payload) if length_override is None else length_override
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", length)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole unmasked frame a server sent in ``data``."""
    frames = []
    position = 0
    while position + 2 <= len(data):
        opcode, length = data[position] & 0x0F, data[position + 1] & 0x7F
        position += 2
        if length == 126:
            (length,) = struct.unpack_from(">H", data, position)
            position += 2
        elif length == 127:
            (length,) = struct.unpack_from(">Q", data, position)
            position += 8
        if position + length > len(data):
            break
        frames.append((opcode, data[position : position + length]))
        position += length
    return frames


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            data += chunk
    return data
