import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from prompts.chunk import (
    CODING_STORED,
    FLAG_CLOSED,
    MAX_CHUNK_BYTES,
    ChunkFormatError,
    PromptChunk,
    encode_chunk,
    frame_contexts,
    is_closed_chunk,
    make_prefix,
    parse_chunk,
)
from prompts.keyframe import Keyframe, interpolate_context
from prompts.quant import QuantizedTensor
from tests.prompts.factories import chunk_of, random_keyframe

GENERATOR_OFFSET = 8  # magic 4 + version + flags + coding + id length


def recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def field_offset(chunk_bytes: bytes) -> int:
    return GENERATOR_OFFSET + chunk_bytes[7]


@st.composite
def chunks(draw):
    rank = draw(st.integers(1, 6))
    tokens = draw(st.integers(1, 9))
    dim = draw(st.integers(1, 40))
    count = draw(st.integers(0, 4))
    planes = st.tuples(
        arrays(np.uint8, (tokens, rank)),
        arrays(np.uint8, (rank, dim)),
        st.floats(0.5**20, 1024.0, width=32),
        st.floats(0, 255, width=32),
        st.floats(0.5**20, 1024.0, width=32),
        st.floats(0, 255, width=32),
    )
    keyframes = tuple(
        Keyframe(frame=10 * (i + 1), u=QuantizedTensor(u, su, zu), v=QuantizedTensor(v, sv, zv))
        for i, (u, v, su, zu, sv, zv) in enumerate(
            draw(st.lists(planes, min_size=count, max_size=count))
        )
    )
    return PromptChunk(
        generator_id=draw(st.text(min_size=1, max_size=20)),
        level=draw(st.integers(0, 65535)),
        index=draw(st.integers(0, 2**32 - 1)),
        frame_start=0,
        frame_end=10 * count + 1,
        interval=10,
        rank=rank,
        keyframes=keyframes,
    )


@given(chunks(), st.sampled_from([CODING_STORED, 1]))
@settings(max_examples=150, deadline=None)
def test_round_trip_is_bit_exact(chunk, coding):
    assert parse_chunk(encode_chunk(chunk, coding=coding)) == chunk


def test_warm_started_keyframes_compress_far_better_than_independent_ones():
    rng = np.random.RandomState(0)
    u, v = rng.randn(77, 8), rng.randn(8, 1024)
    from prompts.quant import quantize_tensor

    close, independent = [], []
    for i in range(6):
        u, v = u + 0.02 * rng.randn(*u.shape), v + 0.02 * rng.randn(*v.shape)
        close.append(Keyframe(10 * (i + 1), quantize_tensor(u), quantize_tensor(v)))
        independent.append(random_keyframe(10 * (i + 1), rank=8, seed=5))
    sizes = []
    for keyframes in (close, independent):
        chunk = PromptChunk("g:1", 0, 1, 0, 60, 10, 8, tuple(keyframes))
        data = encode_chunk(chunk)
        assert parse_chunk(data) == chunk
        sizes.append(len(data))
    assert sizes[1] / sizes[0] > 1.8


@pytest.fixture(scope="module")
def real_chunk_bytes():
    return encode_chunk(chunk_of(1, rank=4, chunk_frames=20))


def test_every_truncation_is_named(real_chunk_bytes):
    for cut in range(len(real_chunk_bytes)):
        with pytest.raises(ChunkFormatError, match="^truncated"):
            parse_chunk(real_chunk_bytes[:cut])


def test_flipped_payload_bits_fail_the_checksum(real_chunk_bytes):
    rng = np.random.RandomState(7)
    start = field_offset(real_chunk_bytes) + 22
    for position in rng.randint(start, len(real_chunk_bytes) - 4, size=300):
        corrupted = bytearray(real_chunk_bytes)
        corrupted[position] ^= 1 << rng.randint(8)
        with pytest.raises(ChunkFormatError, match="checksum mismatch"):
            parse_chunk(bytes(corrupted))


def test_any_flipped_bit_is_a_chunk_format_error(real_chunk_bytes):
    for position in range(0, len(real_chunk_bytes), 7):
        corrupted = bytearray(real_chunk_bytes)
        corrupted[position] ^= 0x10
        with pytest.raises(ChunkFormatError):
            parse_chunk(bytes(corrupted))


def test_bad_magic_and_version(real_chunk_bytes):
    with pytest.raises(ChunkFormatError, match="bad magic"):
        parse_chunk(b"XXXX" + real_chunk_bytes[4:])
    with pytest.raises(ChunkFormatError, match="unsupported version 9"):
        parse_chunk(real_chunk_bytes[:4] + b"\x09" + real_chunk_bytes[5:])


def test_absurd_lengths(real_chunk_bytes):
    offset = field_offset(real_chunk_bytes)
    huge_count = bytearray(real_chunk_bytes[:-4])
    struct.pack_into("<H", huge_count, offset + 22, 65535)
    with pytest.raises(ChunkFormatError, match="size over limit"):
        parse_chunk(recrc(bytes(huge_count)))
    header_end = offset + 24 + 21 * len(chunk_of(1, rank=4, chunk_frames=20).keyframes)
    huge_payload = bytearray(real_chunk_bytes[:-4])
    struct.pack_into("<I", huge_payload, header_end, 2**32 - 1)
    with pytest.raises(ChunkFormatError, match="size over limit"):
        parse_chunk(recrc(bytes(huge_payload)))
    with pytest.raises(ChunkFormatError, match="size over limit"):
        parse_chunk(b"\0" * (MAX_CHUNK_BYTES + 1))
    no_id = bytearray(real_chunk_bytes)
    no_id[7] = 0
    with pytest.raises(ChunkFormatError, match="generator id length"):
        parse_chunk(bytes(no_id))


def test_shape_not_matching_rank():
    chunk = chunk_of(0, rank=3)
    data = encode_chunk(chunk, coding=CODING_STORED)
    offset = field_offset(data)
    body = bytearray(data[:-4])
    struct.pack_into("<H", body, offset + 16, 4)  # claim rank 4 over rank-3 planes
    with pytest.raises(ChunkFormatError, match="shape not matching rank"):
        parse_chunk(recrc(bytes(body)))
    mixed = PromptChunk(
        "g:1", 0, 0, 0, 20, 10, 2, (random_keyframe(10, rank=2), random_keyframe(20, rank=3))
    )
    with pytest.raises(ChunkFormatError, match="shape not matching rank"):
        encode_chunk(mixed)


def test_trailing_bytes_are_refused(real_chunk_bytes):
    with pytest.raises(ChunkFormatError, match="trailing bytes"):
        parse_chunk(real_chunk_bytes + b"\0")


def test_contexts_need_the_previous_keyframe_and_accept_a_prefix():
    first, second = chunk_of(0), chunk_of(1)
    with pytest.raises(ChunkFormatError, match="needs the keyframe at frame 20"):
        frame_contexts(second, None, 20, 20)
    prefix = parse_chunk(encode_chunk(make_prefix(first)))
    assert prefix.is_prefix and prefix.keyframes[0].frame == 20
    contexts = frame_contexts(second, prefix.keyframes[0], 20, 40)
    assert contexts.shape == (20, 77, 1024)
    np.testing.assert_array_equal(contexts[0], first.keyframes[-1].context())
    np.testing.assert_array_equal(
        contexts[5], interpolate_context(first.keyframes[-1], second.keyframes[0], 25)
    )
    with pytest.raises(ChunkFormatError, match="prefix keyframe is at frame 10"):
        frame_contexts(second, first.keyframes[1], 20, 40)


def test_first_chunk_decodes_alone_and_last_chunk_uses_the_short_interval():
    assert frame_contexts(chunk_of(0), None, 0, 20).shape == (20, 77, 1024)
    last = chunk_of(3, frames=63)  # frames 60..62, final keyframe at 62
    contexts = frame_contexts(last, chunk_of(2, frames=63).keyframes[-1], 60, 63)
    assert contexts.shape == (3, 77, 1024)
    np.testing.assert_array_equal(contexts[-1], last.keyframes[-1].context())


def _closed_chunk(index: int = 2) -> PromptChunk:
    """Chunk ``index`` of a closed segment: it also holds the keyframe at its first frame."""
    chunk = chunk_of(index)
    return replace(chunk, keyframes=(random_keyframe(chunk.frame_start, 2, 7), *chunk.keyframes))


def test_closed_chunk_is_version_2_and_round_trips() -> None:
    chunk = _closed_chunk()
    assert chunk.closed
    data = encode_chunk(chunk)
    assert data[4] == 2 and data[5] & FLAG_CLOSED
    assert is_closed_chunk(data)
    back = parse_chunk(data)
    assert back.closed and back.keyframes[0].frame == chunk.frame_start
    assert encode_chunk(back) == data


def test_open_chunks_stay_version_1() -> None:
    for chunk in (chunk_of(0), chunk_of(1), make_prefix(chunk_of(1))):
        data = encode_chunk(chunk)
        assert data[4] == 1 and not chunk.closed and not is_closed_chunk(data)
        assert parse_chunk(data) == chunk


def test_closed_flag_must_match_the_keyframes() -> None:
    data = bytearray(encode_chunk(chunk_of(1)))
    data[4], data[5] = 2, FLAG_CLOSED  # claims closed, holds no keyframe at its first frame
    with pytest.raises(ChunkFormatError, match="closed flag does not match"):
        parse_chunk(recrc(bytes(data[:-4])))
    closed = bytearray(encode_chunk(_closed_chunk()))
    closed[5] = 0  # version 2 holding its start keyframe without the flag
    with pytest.raises(ChunkFormatError, match="closed flag does not match"):
        parse_chunk(recrc(bytes(closed[:-4])))
    v1 = bytearray(encode_chunk(chunk_of(1)))
    v1[5] = FLAG_CLOSED  # version 1 knows no closed flag
    with pytest.raises(ChunkFormatError, match="unknown flags 0x02 for version 1"):
        parse_chunk(recrc(bytes(v1[:-4])))


def test_closed_chunk_decodes_without_prefix() -> None:
    chunk = _closed_chunk()
    with pytest.raises(ChunkFormatError, match="needs the keyframe"):
        frame_contexts(chunk_of(2), None, 40, 40)
    cold = frame_contexts(chunk, None, 40, 60)
    # A prefix (the previous chunk's last keyframe) is ignored: the chunk's own keyframe wins.
    prefix = make_prefix(chunk_of(1)).keyframes[0]
    assert np.array_equal(frame_contexts(chunk, prefix, 40, 60), cold)
    assert np.array_equal(cold[0], chunk.keyframes[0].context())


def test_a_range_of_contexts_equals_that_slice_of_the_whole_chunk():
    chunk, previous = chunk_of(1), chunk_of(0).keyframes[-1]
    whole = frame_contexts(chunk, previous, 20, 40)
    np.testing.assert_array_equal(frame_contexts(chunk, previous, 27, 33), whole[7:13])
    assert frame_contexts(chunk, previous, 25, 25).shape == (0, 77, 1024)
    gap = PromptChunk("g:1", 0, 1, 20, 40, 10, 2, (random_keyframe(30, rank=2),))
    with pytest.raises(ChunkFormatError, match="lacks the keyframe after frame 30"):
        frame_contexts(gap, random_keyframe(20, rank=2), 20, 21)  # checked for the whole chunk


def test_a_reader_refuses_claims_it_cannot_run_before_inflating():
    data = encode_chunk(chunk_of(0))
    assert parse_chunk(data, context_shape=(77, 1024), max_frames=20).index == 0
    with pytest.raises(ChunkFormatError, match="this generator takes 4x8"):
        parse_chunk(data, context_shape=(4, 8))
    with pytest.raises(ChunkFormatError, match="20 frames > 10"):
        parse_chunk(data, max_frames=10)
