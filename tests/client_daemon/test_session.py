"""Session order and continuity rules, without sockets or threads."""

from __future__ import annotations

import dataclasses

import pytest

from client_daemon.session import Session
from prompts.chunk import encode_chunk
from prompts.stream_model import CONTEXT_SHAPE
from tests.client_daemon.helpers import make_chunk, prefix_for, stream_setup
from wire.daemon import Seek, StreamSetup
from wire.errors import ErrorCode, ProtocolError
from wire.media import ChunkMessage

GEN = "tiny:0123"


def new_session(setup: StreamSetup, max_group_frames: int = 60) -> Session:
    return Session(setup, context_shape=CONTEXT_SHAPE, max_group_frames=max_group_frames)


def message(
    index: int, *, level: int = 0, prefix: bool = False, **overrides: object
) -> ChunkMessage:
    chunk = dataclasses.replace(make_chunk(index, GEN, level=level), **overrides)
    data = encode_chunk(chunk)
    prefix_bytes = encode_chunk(prefix_for(index, GEN, level=level)) if prefix else b""
    return ChunkMessage(channel="c", level=level, chunk=index, data=data, prefix=prefix_bytes)


def refused(session: Session, msg: ChunkMessage, code: ErrorCode, text: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        session.accept_chunk(msg)
    assert caught.value.code == code
    assert text in caught.value.message, caught.value.message


def test_chunks_in_order_need_no_prefix() -> None:
    session = new_session(stream_setup(GEN))
    jobs = [session.accept_chunk(message(i)) for i in range(4)]
    assert [(j.level, j.index, j.frames, j.prefix) for j in jobs] == [
        (0, 0, 4, None),
        (0, 1, 4, None),
        (0, 2, 4, None),
        (0, 3, 2, None),  # the short last chunk
    ]


def test_level_switch_needs_the_prefix_of_the_new_level() -> None:
    session = new_session(stream_setup(GEN))
    session.accept_chunk(message(0))
    refused(session, message(1, level=1), ErrorCode.BAD_CHUNK, "needs the switch prefix")
    job = session.accept_chunk(message(1, level=1, prefix=True))
    assert job.prefix is not None and job.prefix.is_prefix and job.level == 1
    session.accept_chunk(message(2, level=1))  # back in sequence on the new level


def test_prefix_of_another_level_is_refused() -> None:
    session = new_session(stream_setup(GEN))
    session.accept_chunk(message(0))
    msg = message(1, level=1)
    msg = dataclasses.replace(msg, prefix=encode_chunk(prefix_for(1, GEN, level=0)))
    refused(session, msg, ErrorCode.BAD_CHUNK, "belongs to level 0")


def test_prefix_must_be_a_prefix_at_the_chunk_start() -> None:
    session = new_session(stream_setup(GEN))
    session.accept_chunk(message(0))
    whole = dataclasses.replace(
        message(1, level=1), prefix=encode_chunk(make_chunk(0, GEN, level=1))
    )
    refused(session, whole, ErrorCode.BAD_CHUNK, "is a whole chunk, not a prefix")
    elsewhere = dataclasses.replace(
        message(1, level=1), prefix=encode_chunk(prefix_for(3, GEN, level=1))
    )
    refused(session, elsewhere, ErrorCode.BAD_CHUNK, "holds frame 12, the chunk starts at frame 4")


def test_out_of_order_chunk_names_the_expected_one() -> None:
    session = new_session(stream_setup(GEN))
    session.accept_chunk(message(0))
    refused(
        session,
        message(2, prefix=True),
        ErrorCode.BAD_CHUNK,
        "out of order: the last chunk was 0, so the next is 1",
    )
    refused(session, message(0), ErrorCode.BAD_CHUNK, "out of order")
    session.accept_chunk(message(1))  # nothing was lost: the right chunk still goes in


def test_first_chunk_must_be_zero_unless_a_seek_says_otherwise() -> None:
    session = new_session(stream_setup(GEN))
    refused(session, message(2), ErrorCode.BAD_CHUNK, "cannot start the session")
    session.accept_seek(Seek(chunk=2))
    refused(session, message(2), ErrorCode.BAD_CHUNK, "needs the switch prefix")
    refused(
        session, message(1, prefix=True), ErrorCode.BAD_CHUNK, "arrived after a seek to chunk 2"
    )
    assert session.accept_chunk(message(2, prefix=True)).index == 2


def test_seek_backwards_then_continue() -> None:
    session = new_session(stream_setup(GEN))
    for i in range(3):
        session.accept_chunk(message(i))
    session.accept_seek(Seek(chunk=0))
    assert session.next_chunk == 0
    session.accept_chunk(message(0))
    session.accept_chunk(message(1))


def test_a_failed_chunk_makes_the_next_one_need_its_prefix() -> None:
    session = new_session(stream_setup(GEN))
    session.accept_chunk(message(0))
    session.break_continuity()
    refused(session, message(1), ErrorCode.BAD_CHUNK, "after a seek or a failed chunk")
    session.accept_chunk(message(1, prefix=True))


def test_chained_streams_cannot_seek_away_from_zero() -> None:
    session = new_session(stream_setup(GEN, rule="chained"))
    with pytest.raises(ProtocolError, match="'chained' rule") as caught:
        session.accept_seek(Seek(chunk=3))
    assert caught.value.code == ErrorCode.BAD_FIELD
    session.accept_seek(Seek(chunk=0))


def test_wrong_generator_is_a_mismatch() -> None:
    session = new_session(stream_setup("tiny:other"))
    refused(session, message(0), ErrorCode.GENERATOR_MISMATCH, f"made for generator '{GEN}'")


def test_header_and_payload_must_agree() -> None:
    session = new_session(stream_setup(GEN))
    msg = dataclasses.replace(message(0), chunk=1)
    refused(
        session,
        msg,
        ErrorCode.BAD_CHUNK,
        "header names chunk 1 of level 0 but the payload holds chunk 0",
    )


def test_chunk_frames_must_fit_the_stream() -> None:
    session = new_session(dataclasses.replace(stream_setup(GEN), chunk_frames=3))
    refused(session, message(0), ErrorCode.BAD_CHUNK, "size over limit: 4 frames > 3")


@pytest.mark.parametrize(
    ("mangle", "defect"),
    [
        (lambda data: data[:-5], "chunk 0 of level 0 is not a valid prompt chunk"),
        (lambda data: b"JUNK" + data[4:], "is not a valid prompt chunk"),
        (lambda data: b"", "is not a valid prompt chunk"),
    ],
)
def test_corrupt_chunk_is_a_bad_chunk(mangle, defect: str) -> None:  # noqa: ANN001
    session = new_session(stream_setup(GEN))
    msg = message(0)
    refused(session, dataclasses.replace(msg, data=mangle(msg.data)), ErrorCode.BAD_CHUNK, defect)
    session.accept_chunk(msg)  # the session is unharmed


def test_corrupt_prefix_is_a_bad_chunk() -> None:
    session = new_session(stream_setup(GEN))
    session.accept_chunk(message(0))
    msg = message(1, level=1, prefix=True)
    refused(
        session,
        dataclasses.replace(msg, prefix=msg.prefix[:-3]),
        ErrorCode.BAD_CHUNK,
        "switch prefix of chunk 1 of level 1 is not a valid",
    )


def test_a_prefix_sent_alone_is_refused() -> None:
    session = new_session(stream_setup(GEN))
    lone = dataclasses.replace(message(0), data=encode_chunk(prefix_for(1, GEN)))
    refused(session, lone, ErrorCode.BAD_CHUNK, "holds a switch prefix")


def test_closed_chunk_needs_no_prefix_after_a_switch_or_seek() -> None:
    session = new_session(stream_setup(GEN))
    session.accept_chunk(message(0))
    own_start = make_chunk(0, GEN, level=1).keyframes[0]  # any keyframe, moved to frame 4
    chunk = make_chunk(1, GEN, level=1)
    start = dataclasses.replace(own_start, frame=chunk.frame_start)
    closed = message(1, level=1, keyframes=(start, *chunk.keyframes))
    job = session.accept_chunk(closed)  # a level switch, no prefix: the chunk holds its keyframe
    assert job.chunk.closed and job.prefix is None
    session.accept_seek(Seek(chunk=1))
    assert session.accept_chunk(closed).index == 1


def test_the_budget_is_checked_from_the_header_before_decoding() -> None:
    session = new_session(stream_setup(GEN), max_group_frames=1)
    refused(session, message(0), ErrorCode.BAD_CHUNK, "no keyframe between frames 0 and 2")
    wide = Session(stream_setup(GEN), context_shape=(77, 2048), max_group_frames=60)
    refused(wide, message(0), ErrorCode.BAD_CHUNK, "this generator takes 77x2048")
    long = message(0, frame_end=5)  # the stream's chunks hold 4 frames
    refused(new_session(stream_setup(GEN)), long, ErrorCode.BAD_CHUNK, "5 frames > 4")
