"""The wire protocol module: round trips, every refusal code, and fuzzing of the parsers."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompts.stream_model import PREV_LATENT_RULES
from wire import daemon, framing, media
from wire.errors import ErrorCode, ProtocolError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

channels = st.from_regex(media.CHANNEL_PATTERN, fullmatch=True)
indices = st.integers(min_value=0, max_value=framing.MAX_INDEX)
finite = st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False)
short_text = st.text(max_size=40)
blobs = st.binary(max_size=2048)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), finite, short_text)
# what untrusted JSON can hold beyond that: huge integers, infinities (1e400 parses as inf)
wild_scalars = st.one_of(scalars, st.integers(), st.integers(10**300, 10**1000), st.floats())

setups = st.builds(
    daemon.StreamSetup,
    generator_id=st.text(min_size=1, max_size=40),
    width=st.integers(1, 16).map(lambda k: 64 * k),
    height=st.integers(1, 16).map(lambda k: 64 * k),
    fps=st.floats(min_value=1, max_value=120, allow_nan=False),
    noise_seed=st.integers(0, 2**32 - 1),
    prev_latent_weight=st.floats(min_value=0, max_value=1, allow_nan=False),
    prev_latent_rule=st.sampled_from(PREV_LATENT_RULES),
    chunk_frames=st.integers(1, 600),
)

client_messages = st.one_of(
    st.builds(
        media.Hello, channel=channels, abr=st.none() | short_text, user_agent=st.none() | short_text
    ),
    st.builds(media.Get, chunk=indices, level=indices, prefix=st.booleans()),
    st.builds(media.Ack, chunk=indices, level=indices),
    st.builds(
        media.Stats,
        buffer_s=finite,
        stalls=st.integers(0, 10_000),
        stall_s=finite,
        level=st.integers(0, 20),
        throughput_kbps=st.none() | finite,
        daemon_fps=st.none() | finite,
        event=st.sampled_from(media.STATS_EVENTS),
        extra=st.dictionaries(st.from_regex(r"x_[a-z]{1,10}", fullmatch=True), scalars, max_size=4),
    ),
)
server_messages = st.one_of(
    st.builds(
        media.ManifestMessage,
        channel=channels,
        manifest=st.dictionaries(short_text, scalars, max_size=5),
    ),
    st.builds(
        framing.ErrorMessage,
        code=st.sampled_from(list(ErrorCode)),
        message=short_text,
        chunk=st.none() | indices,
        level=st.none() | indices,
    ),
    st.builds(
        media.ChunkMessage, channel=channels, level=indices, chunk=indices, data=blobs, prefix=blobs
    ),
)
page_messages = st.one_of(
    st.builds(daemon.Open, stream=setups, init_state=blobs, session=st.none() | short_text),
    st.builds(daemon.Seek, chunk=indices),
    st.builds(
        media.ChunkMessage, channel=channels, level=indices, chunk=indices, data=blobs, prefix=blobs
    ),
)
daemon_messages = st.one_of(
    st.builds(daemon.InitSegment, mime=short_text, data=blobs),
    st.integers(1, 8).flatmap(
        lambda parts: st.builds(
            daemon.MediaSegment,
            level=indices,
            chunk=indices,
            part=st.integers(0, parts - 1),
            parts=st.just(parts),
            frames=st.integers(0, 600),
            generation_ms=finite,
            encode_ms=finite,
            data=blobs,
        )
    ),
    st.builds(
        daemon.Status,
        fps=finite,
        queue_depth=st.integers(0, 100),
        device=short_text,
        generator_id=short_text,
    ),
    st.builds(framing.ErrorMessage, code=st.sampled_from(list(ErrorCode)), message=short_text),
)

PARSERS = (
    media.parse_client_message,
    media.parse_server_message,
    daemon.parse_page_message,
    daemon.parse_daemon_message,
)


def refusal(parse, data) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(data)
    return info.value


# ----------------------------------------------------------------------------- round trips


@FUZZ
@given(client_messages)
def test_client_messages_round_trip(message) -> None:
    assert media.parse_client_message(message.encode()) == message


@FUZZ
@given(server_messages)
def test_server_messages_round_trip(message) -> None:
    assert media.parse_server_message(message.encode()) == message


@FUZZ
@given(page_messages)
def test_page_messages_round_trip(message) -> None:
    assert daemon.parse_page_message(message.encode()) == message


@FUZZ
@given(daemon_messages)
def test_daemon_messages_round_trip(message) -> None:
    assert daemon.parse_daemon_message(message.encode()) == message


def test_chunk_wire_layout_is_length_header_payload() -> None:
    wire = media.encode_chunk_message("sky", 2, 7, b"CHUNK", b"PRE")
    (head_len,) = struct.unpack(">I", wire[:4])
    header = json.loads(wire[4 : 4 + head_len])
    assert header == {
        "type": "chunk",
        "channel": "sky",
        "level": 2,
        "chunk": 7,
        "prefix_bytes": 3,
        "chunk_bytes": 5,
    }
    assert wire[4 + head_len :] == b"PRECHUNK"


def test_stream_setup_from_manifest() -> None:
    manifest = {
        "fps": 30,
        "width": 512,
        "height": 512,
        "chunk_frames": 60,
        "generator": {"id": "tiny:ab12", "name": "tiny"},
        "noise_seed": 88,
        "prev_latent_weight": 0.05,
        "prev_latent_rule": "chunk-reset",
        "levels": [],
    }
    setup = daemon.StreamSetup.from_manifest(manifest)
    assert setup.generator_id == "tiny:ab12" and setup.chunk_frames == 60 and setup.fps == 30.0


def test_stats_keeps_short_unknown_scalars_only() -> None:
    text = json.dumps(
        {
            "type": "stats",
            "buffer_s": 3.5,
            "stalls": 1,
            "stall_s": 0.2,
            "level": 0,
            "startup_s": 0.8,
            "nested": {"a": 1},
            "long": "x" * 500,
        }
    )
    stats = media.parse_client_message(text)
    assert isinstance(stats, media.Stats)
    assert stats.extra == {"startup_s": 0.8} and stats.throughput_kbps is None
    assert stats.behind_live_s is None


def test_stats_behind_live_is_a_non_negative_number_or_null() -> None:
    base = {"type": "stats", "buffer_s": 1.0, "stalls": 0, "stall_s": 0.0, "level": 0}
    stats = media.parse_client_message(json.dumps({**base, "behind_live_s": 4.25}))
    assert isinstance(stats, media.Stats) and stats.behind_live_s == 4.25
    assert media.parse_client_message(stats.encode()) == stats
    for bad in (-1, "far", True):
        with pytest.raises(ProtocolError, match="behind_live_s"):
            media.parse_client_message(json.dumps({**base, "behind_live_s": bad}))


def test_stored_extra_fields_are_bounded_numbers_included() -> None:
    """What telemetry keeps of one `stats`: bounded integers, at most MAX_EXTRA_STATS_BYTES."""
    fields = {f"k{i:02d}_" + "x" * 60: "y" * 128 for i in range(16)}  # ~3 KB of short strings
    fields |= {"huge": 10**4000, "big": 2**53 + 1, "fine": -(2**53)}
    stats = media.Stats.from_fields(
        {"type": "stats", "buffer_s": 1, "stalls": 0, "stall_s": 0, "level": 0, **fields}
    )
    assert "huge" not in stats.extra and "big" not in stats.extra
    stored = json.dumps(stats.extra, separators=(",", ":"))
    assert len(stored) <= media.MAX_EXTRA_STATS_BYTES
    assert len(stats.extra) == 6 and stats.extra["fine"] == -(
        2**53
    )  # five long ones fit, and "fine"


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", ErrorCode.BAD_MESSAGE),
        ("[1, 2]", ErrorCode.BAD_MESSAGE),
        ('{"type": "get", "chunk": NaN, "level": 0}', ErrorCode.BAD_MESSAGE),
        ("[" * 5000 + "]" * 5000, ErrorCode.BAD_MESSAGE),
        ('{"chunk": 1}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": 5}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "manifest", "channel": "a", "manifest": {}}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "get", "chunk": "1", "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "chunk": true, "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "chunk": 1.5, "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "chunk": -1, "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "chunk": 99999999999, "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "chunk": ' + "9" * 400 + ', "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "chunk": ' + "9" * 5000 + ', "level": 0}', ErrorCode.BAD_MESSAGE),
        (
            '{"type": "stats", "buffer_s": '
            + "9" * 400
            + ', "stalls": 0, "stall_s": 0, "level": 0}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type": "stats", "buffer_s": 1e400, "stalls": 0, "stall_s": 0, "level": 0}',
            ErrorCode.BAD_FIELD,
        ),
        ('{"type": "get", "chunk": 1, "level": 0, "prefix": 1}', ErrorCode.BAD_FIELD),
        ('{"type": "get", "level": 0}', ErrorCode.BAD_FIELD),
        ('{"type": "hello", "version": 2, "channel": "sky"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"type": "hello", "version": "1", "channel": "sky"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"type": "hello", "version": 1.0, "channel": "sky"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"type": "hello", "channel": "sky"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"type": "hello", "version": 1, "channel": "../etc"}', ErrorCode.BAD_FIELD),
        ('{"type": "hello", "version": 1, "channel": ".."}', ErrorCode.BAD_FIELD),
        ('{"type": "hello", "version": 1, "channel": "a/b"}', ErrorCode.BAD_FIELD),
        ('{"type": "hello", "version": 1, "channel": "a\\\\b"}', ErrorCode.BAD_FIELD),
        ('{"type": "hello", "version": 1, "channel": ""}', ErrorCode.BAD_FIELD),
        ('{"type": "hello", "version": 1, "channel": ["sky"]}', ErrorCode.BAD_FIELD),
        (
            '{"type": "stats", "buffer_s": -1, "stalls": 0, "stall_s": 0, "level": 0}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type": "stats", "buffer_s": 1, "stalls": 0, "stall_s": 0, "level": 0, "event": "x"}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type": "get", "chunk": 1, "level": 0, "pad": "'
            + "x" * framing.MAX_CONTROL_BYTES
            + '"}',
            ErrorCode.MESSAGE_TOO_LARGE,
        ),
    ],
)
def test_client_refusals_name_their_code(text: str, code: ErrorCode) -> None:
    error = refusal(media.parse_client_message, text)
    assert error.code is code
    assert error.message and "\n" not in error.message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.BAD_MESSAGE),
        (b"\x00\x00", ErrorCode.BAD_MESSAGE),
        (b"\x00\x00\x00\x10{}", ErrorCode.BAD_MESSAGE),
        (b"\xff\xff\xff\xff", ErrorCode.MESSAGE_TOO_LARGE),
        (b"\x00\x00\x00\x02{}", ErrorCode.UNKNOWN_TYPE),
        (b"\x00\x00\x00\x03\xff\xfe\x00", ErrorCode.BAD_MESSAGE),
        (framing.encode_binary({"type": "segment", "level": 0}), ErrorCode.UNKNOWN_TYPE),
        (
            framing.encode_binary(
                {
                    "type": "chunk",
                    "channel": "a",
                    "level": 0,
                    "chunk": 0,
                    "prefix_bytes": 1,
                    "chunk_bytes": 9,
                },
                b"12345",
            ),
            ErrorCode.BAD_FIELD,
        ),
        (
            framing.encode_binary(
                {
                    "type": "chunk",
                    "channel": "../x",
                    "level": 0,
                    "chunk": 0,
                    "prefix_bytes": 0,
                    "chunk_bytes": 1,
                },
                b"1",
            ),
            ErrorCode.BAD_FIELD,
        ),
    ],
)
def test_binary_refusals_name_their_code(data: bytes, code: ErrorCode) -> None:
    assert refusal(daemon.parse_page_message, data).code is code


def test_open_refuses_other_version_and_bad_stream() -> None:
    setup = daemon.StreamSetup("tiny:1", 512, 512, 30.0, 88, 0.05, "chunk-reset", 60)
    good = daemon.Open(stream=setup, init_state=b"x").encode()
    assert isinstance(daemon.parse_page_message(good), daemon.Open)
    fields = setup.to_fields()
    wrong_version = framing.encode_binary({"type": "open", "version": 7, "stream": fields})
    assert refusal(daemon.parse_page_message, wrong_version).code is ErrorCode.UNSUPPORTED_VERSION
    odd_size = framing.encode_binary(
        {"type": "open", "version": 1, "stream": {**fields, "width": 500}}
    )
    assert refusal(daemon.parse_page_message, odd_size).code is ErrorCode.BAD_FIELD
    bad_rule = framing.encode_binary(
        {"type": "open", "version": 1, "stream": {**fields, "prev_latent_rule": "x"}}
    )
    assert refusal(daemon.parse_page_message, bad_rule).code is ErrorCode.BAD_FIELD
    too_big = framing.encode_binary(
        {"type": "open", "version": 1, "stream": fields}, bytes(media.MAX_INIT_STATE_BYTES + 1)
    )
    assert refusal(daemon.parse_page_message, too_big).code is ErrorCode.MESSAGE_TOO_LARGE


def test_oversized_payload_and_header_are_refused() -> None:
    big = media.encode_chunk_message("a", 0, 0, bytes(media.MAX_CHUNK_PAYLOAD_BYTES + 1))
    assert refusal(media.parse_server_message, big).code is ErrorCode.MESSAGE_TOO_LARGE
    with pytest.raises(ValueError, match="header"):
        framing.encode_binary({"type": "chunk", "pad": "x" * framing.MAX_HEADER_BYTES})


def test_error_message_refuses_unknown_code() -> None:
    assert (
        refusal(media.parse_server_message, '{"type":"error","code":"nope","message":"m"}').code
        is ErrorCode.BAD_FIELD
    )
    assert (
        refusal(media.parse_server_message, '{"type":"error","code":[1],"message":"m"}').code
        is ErrorCode.BAD_FIELD
    )


# ----------------------------------------------------------------------------- fuzzing


@FUZZ
@given(st.one_of(st.binary(max_size=256), st.text(max_size=256)))
def test_parsers_raise_only_protocol_errors_on_garbage(data) -> None:
    for parse in PARSERS:
        try:
            parse(data)
        except ProtocolError as error:
            assert isinstance(error.code, ErrorCode)


json_values = st.recursive(
    wild_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "type",
        "version",
        "channel",
        "chunk",
        "level",
        "prefix",
        "buffer_s",
        "stalls",
        "stall_s",
        "event",
        "code",
        "message",
        "manifest",
        "abr",
        "user_agent",
        "throughput_kbps",
        "daemon_fps",
        "fps",
    ]
)
type_names = st.sampled_from(
    ["hello", "get", "stats", "ack", "manifest", "error", "seek", "status", "x"]
)


@FUZZ
@given(type_names, st.dictionaries(field_names, json_values, max_size=8))
def test_parsers_validate_structured_junk(kind: str, fields: dict) -> None:
    text = json.dumps({**fields, "type": kind})
    for parse in PARSERS:
        try:
            message = parse(text)
        except ProtocolError:
            continue
        assert message.TYPE == kind  # anything accepted is exactly the message it claims to be


@FUZZ
@given(page_messages, st.data())
def test_corrupted_binary_messages_never_escape_as_other_errors(message, data) -> None:
    wire = message.encode()
    if isinstance(wire, str):
        wire = wire.encode()
    position = data.draw(st.integers(0, len(wire) - 1))
    flipped = bytes([wire[position] ^ data.draw(st.integers(1, 255))])
    corrupted = wire[:position] + flipped + wire[position + 1 :]
    for candidate in (corrupted, wire[:position]):
        try:
            daemon.parse_page_message(candidate)
        except ProtocolError:
            pass


@pytest.mark.parametrize(("part", "parts"), [(2, 2), (0, 0), (-1, 3)])
def test_a_segment_part_outside_its_chunk_is_refused(part: int, parts: int) -> None:
    header = {
        "type": "segment",
        "level": 0,
        "chunk": 1,
        "part": part,
        "parts": parts,
        "frames": 10,
        "generation_ms": 1.0,
        "encode_ms": 1.0,
    }
    message = framing.encode_binary(header, b"moof")
    assert refusal(daemon.parse_daemon_message, message).code is ErrorCode.BAD_FIELD
