"""The prompt chunk: our own versioned binary format for a chunk of keyframes.

Byte layout (little-endian; ``docs/prompt-format.md`` has the table):

    magic "PRMC" | version u8 (1 or 2) | flags u8 (bit 0 prefix, bit 1 closed: version 2) | coding u8 | generator-id length u8 | generator id
    level u16 | chunk index u32 | frame start u32 | frame end u32 | interval u16 | rank u16
    tokens u16 | dim u16 | keyframe count u16
    per keyframe: frame u32 | U scale f32 | U zero point f32 | V scale f32 | V zero point f32
                  | transforms u8 (bit 0: U delta-coded, bit 1: V delta-coded)
    payload length u32 | payload | CRC32 u32 of every byte before it

Every length is validated before use; ``parse_chunk`` returns a chunk or raises
``ChunkFormatError`` naming the defect. No pickle anywhere.

Version 2 adds *closed* chunks: a chunk ``j > 0`` that holds its own keyframe at its first
frame (the start of a closed segment, like a closed GOP) needs no switch prefix, so it is a
random-access point. The encoder writes version 2 only for such chunks (flag bit 1 set) and
version 1 for every other chunk, so open ladders stay byte-for-byte what version 1 readers know.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from common.errors import UserError
from prompts import entropy
from prompts.keyframe import Keyframe, interpolate_context
from prompts.quant import QuantizedTensor

MAGIC = b"PRMC"
VERSION = 2  # the newest version this module writes and reads
OPEN_VERSION = 1  # written for every chunk that is not closed (readable by version 1 readers)
READABLE_VERSIONS = (OPEN_VERSION, VERSION)
FLAG_PREFIX = 0x01
FLAG_CLOSED = 0x02  # version 2: the chunk holds the keyframe at its first frame (no prefix needed)
KNOWN_FLAGS = {OPEN_VERSION: FLAG_PREFIX, VERSION: FLAG_PREFIX | FLAG_CLOSED}
CODING_STORED = 0
CODING_DEFLATE_PLANES = 1
TRANSFORM_U_DELTA = 0x01
TRANSFORM_V_DELTA = 0x02

MAX_CHUNK_BYTES = 16 * 1024 * 1024  # 16 MiB: far above any real chunk (rank 64, 600 keyframes)
MAX_GENERATOR_ID = 64  # bytes of UTF-8
MAX_RANK = 256
MAX_TOKENS = 1024
MAX_DIM = 4096
MAX_KEYFRAMES = 4096

_PRELUDE = struct.Struct("<4sBBBB")  # magic, version, flags, coding, generator id length
_FIELDS = struct.Struct("<HIIIHHHHH")  # level .. keyframe count
_KEYFRAME = struct.Struct("<IffffB")
_U32 = struct.Struct("<I")


class ChunkFormatError(UserError, ValueError):
    """A prompt chunk could not be parsed; the message names the defect."""


@dataclass(frozen=True)
class PromptChunk:
    """The keyframes a chunk holds for frames ``[frame_start, frame_end)`` of one level."""

    generator_id: str
    level: int
    index: int
    frame_start: int
    frame_end: int
    interval: int
    rank: int
    keyframes: tuple[Keyframe, ...]
    is_prefix: bool = False

    @property
    def frame_count(self) -> int:
        return self.frame_end - self.frame_start

    @property
    def closed(self) -> bool:
        """A chunk after the first that holds the keyframe at its first frame: it decodes
        without a switch prefix (the start of a closed segment, a random-access point)."""
        return (
            not self.is_prefix
            and self.index > 0
            and bool(self.keyframes)
            and self.keyframes[0].frame == self.frame_start
        )

    @property
    def raw_payload_bytes(self) -> int:
        """Bytes of the quantised U and V planes before entropy coding."""
        return sum(k.u.data.size + k.v.data.size for k in self.keyframes)


def _check_structure(chunk: PromptChunk) -> None:
    """Semantic checks shared by the encoder and the parser."""
    if not chunk.generator_id or len(chunk.generator_id.encode("utf-8")) > MAX_GENERATOR_ID:
        raise ChunkFormatError(f"generator id must be 1..{MAX_GENERATOR_ID} bytes of UTF-8")
    if not 1 <= chunk.rank <= MAX_RANK:
        raise ChunkFormatError(f"rank {chunk.rank} outside 1..{MAX_RANK}")
    if chunk.interval < 1:
        raise ChunkFormatError(f"interval {chunk.interval} must be at least 1")
    if chunk.frame_end < chunk.frame_start:
        raise ChunkFormatError(f"frame range [{chunk.frame_start}, {chunk.frame_end}) is reversed")
    if len(chunk.keyframes) > MAX_KEYFRAMES:
        raise ChunkFormatError(
            f"{len(chunk.keyframes)} keyframes is over the limit {MAX_KEYFRAMES}"
        )
    previous = -1
    for keyframe in chunk.keyframes:
        if keyframe.rank != chunk.rank:
            raise ChunkFormatError(
                f"shape not matching rank: keyframe {keyframe.frame} has rank {keyframe.rank}, "
                f"chunk says {chunk.rank}"
            )
        if keyframe.frame <= previous:
            raise ChunkFormatError(f"keyframe positions not increasing at frame {keyframe.frame}")
        if not chunk.frame_start <= keyframe.frame <= chunk.frame_end:
            raise ChunkFormatError(
                f"keyframe at frame {keyframe.frame} outside the chunk's frames "
                f"[{chunk.frame_start}, {chunk.frame_end}]"
            )
        previous = keyframe.frame
    shapes = {(k.tokens, k.dim) for k in chunk.keyframes}
    if len(shapes) > 1:
        raise ChunkFormatError(f"keyframes disagree on the context shape: {sorted(shapes)}")
    if chunk.is_prefix and (len(chunk.keyframes) != 1 or chunk.frame_start != chunk.frame_end):
        raise ChunkFormatError("a switch prefix holds exactly one keyframe and no frames")


def encode_chunk(chunk: PromptChunk, *, coding: int = CODING_DEFLATE_PLANES) -> bytes:
    """Serialise a chunk (entropy-coded unless ``coding=CODING_STORED``)."""
    _check_structure(chunk)
    keyframes = chunk.keyframes
    tokens, dim = (keyframes[0].tokens, keyframes[0].dim) if keyframes else (0, 0)
    u_planes = [k.u.data for k in keyframes]
    v_planes = [k.v.data for k in keyframes]
    if coding == CODING_DEFLATE_PLANES:
        u_params = [(k.u.scale, k.u.zero_point) for k in keyframes]
        v_params = [(k.v.scale, k.v.zero_point) for k in keyframes]
        u_deltas = entropy.choose_transforms(u_planes, u_params)
        v_deltas = entropy.choose_transforms(v_planes, v_params)
        u_stream = entropy.deflate(entropy.apply_transforms(u_planes, u_params, u_deltas))
        v_stream = entropy.deflate(entropy.apply_transforms(v_planes, v_params, v_deltas))
        payload = _U32.pack(len(u_stream)) + u_stream + v_stream
    elif coding == CODING_STORED:
        u_deltas = v_deltas = [False] * len(keyframes)
        payload = b"".join(p.tobytes() for p in u_planes) + b"".join(p.tobytes() for p in v_planes)
    else:
        raise ValueError(f"unknown coding {coding}")
    generator = chunk.generator_id.encode("utf-8")
    flags = (FLAG_PREFIX if chunk.is_prefix else 0) | (FLAG_CLOSED if chunk.closed else 0)
    version = VERSION if chunk.closed else OPEN_VERSION
    parts = [
        _PRELUDE.pack(MAGIC, version, flags, coding, len(generator)),
        generator,
        _FIELDS.pack(
            chunk.level,
            chunk.index,
            chunk.frame_start,
            chunk.frame_end,
            chunk.interval,
            chunk.rank,
            tokens,
            dim,
            len(keyframes),
        ),
    ]
    for keyframe, u_delta, v_delta in zip(keyframes, u_deltas, v_deltas, strict=True):
        transforms = (TRANSFORM_U_DELTA if u_delta else 0) | (TRANSFORM_V_DELTA if v_delta else 0)
        parts.append(
            _KEYFRAME.pack(
                keyframe.frame,
                keyframe.u.scale,
                keyframe.u.zero_point,
                keyframe.v.scale,
                keyframe.v.zero_point,
                transforms,
            )
        )
    parts += [_U32.pack(len(payload)), payload]
    body = b"".join(parts)
    data = body + _U32.pack(zlib.crc32(body))
    if len(data) > MAX_CHUNK_BYTES:
        raise ChunkFormatError(f"size over limit: {len(data)} bytes > {MAX_CHUNK_BYTES}")
    return data


def _check_params(params: list[tuple[float, float]]) -> None:
    for scale, zero_point in params:
        if not (np.isfinite(scale) and scale > 0 and 0.0 <= zero_point <= 255.0):
            raise ChunkFormatError(
                f"invalid quantisation parameters scale={scale} zero point={zero_point}"
            )


class _Reader:
    """Bounds-checked sequential reads; a short read is a truncated chunk."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise ChunkFormatError(
                f"truncated chunk: {what} needs bytes {self.offset}..{end}, "
                f"only {len(self.data)} present"
            )
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def unpack(self, layout: struct.Struct, what: str) -> tuple[Any, ...]:
        return layout.unpack(self.take(layout.size, what))


def parse_chunk(
    data: bytes,
    *,
    max_bytes: int = MAX_CHUNK_BYTES,
    context_shape: tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> PromptChunk:
    """Parse and validate a chunk; raises ``ChunkFormatError`` naming the defect.

    A reader that runs the chunk passes what it can run: ``context_shape`` (its generator's
    tokens x dim) and ``max_frames``; a chunk claiming more is refused from its header, before
    any plane is inflated or any context built.
    """
    data = bytes(data)
    if len(data) > max_bytes:
        raise ChunkFormatError(f"size over limit: {len(data)} bytes > {max_bytes}")
    reader = _Reader(data)
    magic, version, flags, coding, generator_length = reader.unpack(_PRELUDE, "header")
    if magic != MAGIC:
        raise ChunkFormatError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version not in READABLE_VERSIONS:
        raise ChunkFormatError(
            f"unsupported version {version} (this reader knows {', '.join(map(str, READABLE_VERSIONS))})"
        )
    if flags & ~KNOWN_FLAGS[version]:
        raise ChunkFormatError(f"unknown flags 0x{flags:02x} for version {version}")
    if coding not in (CODING_STORED, CODING_DEFLATE_PLANES):
        raise ChunkFormatError(f"unknown payload coding {coding}")
    if not 1 <= generator_length <= MAX_GENERATOR_ID:
        raise ChunkFormatError(
            f"generator id length {generator_length} outside 1..{MAX_GENERATOR_ID}"
        )
    generator_raw = reader.take(generator_length, "generator id")
    (level, index, frame_start, frame_end, interval, rank, tokens, dim, count) = reader.unpack(
        _FIELDS, "chunk fields"
    )
    if count > MAX_KEYFRAMES:
        raise ChunkFormatError(f"size over limit: {count} keyframes > {MAX_KEYFRAMES}")
    _check_claims(frame_start, frame_end, count, (tokens, dim), context_shape, max_frames)
    records = [reader.unpack(_KEYFRAME, f"keyframe record {i}") for i in range(count)]
    (payload_length,) = reader.unpack(_U32, "payload length")
    if payload_length > max_bytes:
        raise ChunkFormatError(f"size over limit: payload of {payload_length} bytes > {max_bytes}")
    payload = reader.take(payload_length, "payload")
    body_end = reader.offset
    (stored_crc,) = reader.unpack(_U32, "checksum")
    if reader.offset != len(data):
        raise ChunkFormatError(f"{len(data) - reader.offset} trailing bytes after the checksum")
    actual_crc = zlib.crc32(data[:body_end])
    if stored_crc != actual_crc:
        raise ChunkFormatError(
            f"checksum mismatch: stored 0x{stored_crc:08x}, computed 0x{actual_crc:08x}"
        )

    try:
        generator_id = generator_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ChunkFormatError("generator id is not UTF-8") from None
    if not 1 <= rank <= MAX_RANK:
        raise ChunkFormatError(f"rank {rank} outside 1..{MAX_RANK}")
    if count and not (1 <= tokens <= MAX_TOKENS and 1 <= dim <= MAX_DIM):
        raise ChunkFormatError(f"context shape {tokens}x{dim} outside the limits")
    u_shape, v_shape = (tokens, rank), (rank, dim)
    u_size, v_size = count * tokens * rank, count * rank * dim
    u_deltas = [bool(r[5] & TRANSFORM_U_DELTA) for r in records]
    v_deltas = [bool(r[5] & TRANSFORM_V_DELTA) for r in records]
    if any(r[5] & ~(TRANSFORM_U_DELTA | TRANSFORM_V_DELTA) for r in records):
        raise ChunkFormatError("unknown plane transform bits")
    try:
        if coding == CODING_STORED:
            if payload_length != u_size + v_size:
                raise ChunkFormatError(
                    f"shape not matching rank: payload of {payload_length} bytes, rank {rank} x "
                    f"{count} keyframes of {tokens}x{dim} needs {u_size + v_size}"
                )
            u_stream, v_stream = payload[:u_size], payload[u_size:]
        else:
            if payload_length < _U32.size:
                raise ChunkFormatError("truncated payload: missing the U stream length")
            (u_length,) = _U32.unpack_from(payload)
            if u_length > payload_length - _U32.size:
                raise ChunkFormatError(f"U stream length {u_length} exceeds the payload")
            u_stream = entropy.inflate_exact(payload[4 : 4 + u_length], u_size)
            v_stream = entropy.inflate_exact(payload[4 + u_length :], v_size)
        u_params = [(r[1], r[2]) for r in records]
        v_params = [(r[3], r[4]) for r in records]
        _check_params(u_params + v_params)
        u_planes = entropy.undo_transforms(u_stream, [u_shape] * count, u_params, u_deltas)
        v_planes = entropy.undo_transforms(v_stream, [v_shape] * count, v_params, v_deltas)
    except entropy.EntropyError as error:
        raise ChunkFormatError(f"shape not matching rank or corrupt payload: {error}") from None

    try:
        keyframes = tuple(
            Keyframe(
                frame=record[0],
                u=QuantizedTensor(u_plane, record[1], record[2]),
                v=QuantizedTensor(v_plane, record[3], record[4]),
            )
            for record, u_plane, v_plane in zip(records, u_planes, v_planes, strict=True)
        )
    except ValueError as error:
        raise ChunkFormatError(f"invalid keyframe parameters: {error}") from None
    chunk = PromptChunk(
        generator_id=generator_id,
        level=level,
        index=index,
        frame_start=frame_start,
        frame_end=frame_end,
        interval=interval,
        rank=rank,
        keyframes=keyframes,
        is_prefix=bool(flags & FLAG_PREFIX),
    )
    _check_structure(chunk)
    if version == VERSION and bool(flags & FLAG_CLOSED) != chunk.closed:
        raise ChunkFormatError(
            "closed flag does not match the keyframes: a closed chunk (index > 0) holds the "
            f"keyframe at its first frame {chunk.frame_start}, and only a closed chunk sets the flag"
        )
    return chunk


def is_closed_chunk(data: bytes) -> bool:
    """Whether encoded chunk bytes say "closed" in their header (no full parse; a server uses it
    to skip the switch prefix a closed chunk does not need)."""
    return (
        len(data) >= _PRELUDE.size
        and data[:4] == MAGIC
        and data[4] == VERSION
        and bool(data[5] & FLAG_CLOSED)
    )


def _check_claims(
    frame_start: int,
    frame_end: int,
    count: int,
    shape: tuple[int, int],
    context_shape: tuple[int, int] | None,
    max_frames: int | None,
) -> None:
    """Header checks that bound what parsing and decoding the chunk may allocate."""
    if frame_end < frame_start:
        raise ChunkFormatError(f"frame range [{frame_start}, {frame_end}) is reversed")
    frames = frame_end - frame_start
    if count > frames + 1:  # strictly increasing positions inside [frame_start, frame_end]
        raise ChunkFormatError(f"{count} keyframes cannot lie in {frames} frames")
    if max_frames is not None and frames > max_frames:
        raise ChunkFormatError(f"size over limit: {frames} frames > {max_frames}")
    if context_shape is not None and count and shape != tuple(context_shape):
        raise ChunkFormatError(
            f"contexts of {shape[0]}x{shape[1]}, this generator takes "
            f"{context_shape[0]}x{context_shape[1]}"
        )


def make_prefix(chunk: PromptChunk) -> PromptChunk:
    """The switch prefix of the next chunk: this chunk's last keyframe, alone."""
    if not chunk.keyframes:
        raise ChunkFormatError(f"chunk {chunk.index} holds no keyframe to serve as a prefix")
    last = chunk.keyframes[-1]
    return replace(
        chunk, frame_start=last.frame, frame_end=last.frame, keyframes=(last,), is_prefix=True
    )


def frame_contexts(
    chunk: PromptChunk, previous: Keyframe | None, start: int, stop: int
) -> np.ndarray:
    """Contexts of frames ``[start, stop)`` of the chunk, float32 ``[stop - start, tokens, dim]``.

    ``previous`` is the keyframe at ``frame_start`` held by the previous chunk of the same
    level (known from sequence, or sent as the switch prefix); it is needed unless the chunk
    holds a keyframe at its first frame. The keyframes the *whole* chunk needs are checked
    whatever range is asked, so an empty range validates a chunk without building anything.
    """
    if not chunk.frame_start <= start <= stop <= chunk.frame_end:
        raise ValueError(
            f"frames [{start}, {stop}) are not inside chunk {chunk.index}'s "
            f"[{chunk.frame_start}, {chunk.frame_end})"
        )
    keyframes = list(chunk.keyframes)
    if previous is not None and (not keyframes or keyframes[0].frame > previous.frame):
        if previous.rank != chunk.rank:
            raise ChunkFormatError(
                f"prefix keyframe has rank {previous.rank}, chunk has rank {chunk.rank}"
            )
        if previous.frame != chunk.frame_start:
            raise ChunkFormatError(
                f"prefix keyframe is at frame {previous.frame}, chunk {chunk.index} starts at "
                f"frame {chunk.frame_start}"
            )
        keyframes.insert(0, previous)
    if chunk.frame_count == 0:
        return np.zeros((0, 0, 0), dtype=np.float32)
    if not keyframes or keyframes[0].frame > chunk.frame_start:
        raise ChunkFormatError(
            f"chunk {chunk.index} needs the keyframe at frame {chunk.frame_start} "
            "(the previous chunk's last keyframe, or a switch prefix)"
        )
    last = keyframes[-1].frame
    if last < chunk.frame_end - 1:  # checked for the whole chunk, whatever range is asked
        raise ChunkFormatError(
            f"chunk {chunk.index} lacks the keyframe after frame {last} needed for frame {last + 1}"
        )
    if start == stop:
        return np.zeros((0, keyframes[0].tokens, keyframes[0].dim), dtype=np.float32)
    contexts = []
    position = 0
    for frame in range(start, stop):
        while position + 1 < len(keyframes) and keyframes[position + 1].frame <= frame:
            position += 1
        current = keyframes[position]
        if frame == current.frame:
            contexts.append(current.context())
        else:
            contexts.append(interpolate_context(current, keyframes[position + 1], frame))
    return np.stack(contexts).astype(np.float32, copy=False)
