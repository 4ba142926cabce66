"""The stream's initial latent state, sent once per stream (``init.bin``).

Layout (little-endian): magic "PRIS" | version u8 | dtype u8 (0 float32, 1 float16) |
ndim u8 | reserved u8 | dims u32 x ndim | payload length u32 | raw DEFLATE of the
little-endian values | CRC32 u32 of every byte before it. float32 keeps imported legacy
states bit-exact; float16 halves what a new stream sends.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np

from common.errors import UserError

MAGIC = b"PRIS"
VERSION = 1
DTYPES: dict[int, np.dtype[Any]] = {0: np.dtype("<f4"), 1: np.dtype("<f2")}
MAX_ELEMENTS = 4 * 256 * 256  # a 2048x2048 stream's latent; anything larger is refused
MAX_INIT_STATE_BYTES = 4 * 1024 * 1024  # bytes of one init.bin (far above MAX_ELEMENTS as float32)
MAX_NDIM = 4
_HEADER = struct.Struct("<4sBBBB")
_U32 = struct.Struct("<I")


class InitStateError(UserError, ValueError):
    """An init state could not be parsed; the message names the defect."""


def encode_init_state(latent: np.ndarray, *, dtype: str = "float32") -> bytes:
    """Serialise a latent (e.g. 1x4x64x64) as float32 or float16."""
    array = np.asarray(latent)
    codes = {"float32": 0, "float16": 1}
    if dtype not in codes:
        raise ValueError(f"init state dtype must be float32 or float16, got {dtype}")
    if not 1 <= array.ndim <= MAX_NDIM or array.size > MAX_ELEMENTS or array.size == 0:
        raise ValueError(f"init state shape {array.shape} outside the limits")
    if not np.all(np.isfinite(array)):
        raise ValueError("init state has NaN or infinite values")
    code = codes[dtype]
    raw = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(raw) + compressor.flush()
    body = (
        _HEADER.pack(MAGIC, VERSION, code, array.ndim, 0)
        + struct.pack(f"<{array.ndim}I", *array.shape)
        + _U32.pack(len(payload))
        + payload
    )
    return body + _U32.pack(zlib.crc32(body))


def parse_init_state(data: bytes) -> np.ndarray:
    """Parse ``init.bin`` into a float32 array; raises ``InitStateError`` naming the defect."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise InitStateError(f"truncated init state: {len(data)} bytes")
    magic, version, code, ndim, _reserved = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise InitStateError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise InitStateError(f"unsupported version {version}")
    if code not in DTYPES:
        raise InitStateError(f"unknown dtype code {code}")
    if not 1 <= ndim <= MAX_NDIM:
        raise InitStateError(f"ndim {ndim} outside 1..{MAX_NDIM}")
    offset = _HEADER.size
    if len(data) < offset + 4 * ndim + 4:
        raise InitStateError("truncated init state header")
    shape = struct.unpack_from(f"<{ndim}I", data, offset)
    offset += 4 * ndim
    count = math.prod(shape)  # Python integers: 65535^4 must not wrap around as int64 would
    if count == 0 or count > MAX_ELEMENTS:
        raise InitStateError(f"size over limit: shape {shape}")
    (length,) = _U32.unpack_from(data, offset)
    offset += 4
    if offset + length + 4 != len(data):
        raise InitStateError(
            f"truncated init state: payload of {length} bytes and checksum need "
            f"{offset + length + 4} bytes, got {len(data)}"
        )
    (stored,) = _U32.unpack_from(data, offset + length)
    if zlib.crc32(data[: offset + length]) != stored:
        raise InitStateError("checksum mismatch")
    expected = count * DTYPES[code].itemsize
    decompressor = zlib.decompressobj(-15)
    try:
        raw = decompressor.decompress(data[offset : offset + length], expected)
    except zlib.error as error:
        raise InitStateError(f"corrupt payload ({error})") from None
    needs = f"its shape {list(shape)} of {DTYPES[code].name} needs {expected} bytes"
    if not decompressor.eof and len(raw) == expected:  # inflating stopped at the shape's size
        raise InitStateError(f"payload inflates to more than the header says: {needs}")
    if len(raw) != expected or not decompressor.eof:
        raise InitStateError(f"payload inflates to {len(raw)} bytes, {needs}")
    values = np.frombuffer(raw, dtype=DTYPES[code]).reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise InitStateError("init state has NaN or infinite values")
    return values
