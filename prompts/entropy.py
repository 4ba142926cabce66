"""Lossless coding of a chunk's quantised planes.

Each keyframe's U and V planes are coded either as they are or as a residual (mod 256)
against a prediction from the previous keyframe of the same chunk: the previous plane
dequantised and requantised with this plane's scale and zero point, so that a small drift
of the quantiser costs nothing. Warm-started fits keep consecutive keyframes close, so differences are small and
cheap; keyframes fitted from random starts (the original release) are coded as they are.
The choice is made per stream by compressing both candidates. The U planes of a chunk then form one stream and the V planes another (their statistics
differ: U spreads over about 5.6 bits per byte, V over about 7.1), each compressed with
raw DEFLATE, whose Huffman tables adapt to each stream.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from common.errors import UserError

DEFLATE_LEVEL = 9
DEFLATE_WBITS = -15  # raw DEFLATE: no zlib header or Adler-32 (the chunk has its own CRC32)


class EntropyError(UserError, ValueError):
    """The coded payload does not decode to the expected planes."""


Params = tuple[float, float]  # (scale, zero point) of a plane


def predict_plane(previous: np.ndarray, previous_params: Params, params: Params) -> np.ndarray:
    """The previous plane re-expressed in this plane's quantiser (float32, as stored)."""
    prev_scale, prev_zero = (np.float32(x) for x in previous_params)
    scale, zero = (np.float32(x) for x in params)
    values = prev_scale * (previous.astype(np.float32) - prev_zero)
    return np.clip(np.round(zero + values / scale), 0, 255).astype(np.uint8)


def choose_transforms(planes: Sequence[np.ndarray], params: Sequence[Params]) -> list[bool]:
    """Per plane, whether to code its residual against the prediction from the previous plane.

    Two candidates are compressed and the smaller kept: every plane as it is, or every
    plane after the first as a residual (the warm-started case). Mixing the two in one
    stream hurts the shared Huffman tables more than it saves.
    """
    as_is = [False] * len(planes)
    if len(planes) < 2 or any(p.shape != planes[0].shape for p in planes):
        return as_is
    residuals = [False] + [True] * (len(planes) - 1)
    size_as_is = len(deflate(apply_transforms(planes, params, as_is)))
    size_residuals = len(deflate(apply_transforms(planes, params, residuals)))
    return residuals if size_residuals < size_as_is else as_is


def apply_transforms(
    planes: Sequence[np.ndarray], params: Sequence[Params], deltas: Sequence[bool]
) -> bytes:
    out = bytearray()
    for index, (plane, delta) in enumerate(zip(planes, deltas, strict=True)):
        if delta:
            plane = plane - predict_plane(planes[index - 1], params[index - 1], params[index])
        out += np.ascontiguousarray(plane, dtype=np.uint8).tobytes()
    return bytes(out)


def undo_transforms(
    stream: bytes,
    shapes: Sequence[tuple[int, int]],
    params: Sequence[Params],
    deltas: Sequence[bool],
) -> list[np.ndarray]:
    planes: list[np.ndarray] = []
    offset = 0
    for index, (shape, delta) in enumerate(zip(shapes, deltas, strict=True)):
        size = shape[0] * shape[1]
        plane = np.frombuffer(stream, dtype=np.uint8, count=size, offset=offset).reshape(shape)
        if delta:
            if not planes or planes[-1].shape != shape:
                raise EntropyError("residual-coded plane has no previous plane of the same shape")
            plane = plane + predict_plane(planes[-1], params[index - 1], params[index])
        planes.append(np.array(plane, dtype=np.uint8))
        offset += size
    return planes


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, DEFLATE_WBITS, 9)
    return compressor.compress(data) + compressor.flush()


def inflate_exact(data: bytes, expected_size: int) -> bytes:
    """Inflate raw DEFLATE to exactly ``expected_size`` bytes (bounded: no decompression bomb)."""
    decompressor = zlib.decompressobj(DEFLATE_WBITS)
    try:
        out = decompressor.decompress(data, expected_size)
    except zlib.error as error:
        raise EntropyError(f"corrupt compressed payload ({error})") from None
    if len(out) != expected_size:
        raise EntropyError(
            f"compressed payload decodes to {len(out)} bytes, expected {expected_size}"
        )
    if decompressor.unconsumed_tail or not decompressor.eof or decompressor.unused_data:
        raise EntropyError("compressed payload holds more data than its planes")
    return out
