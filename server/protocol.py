"""The Promptus wire protocol, written once: every message of both WebSocket links.

Links (spec: ``docs/protocol.md``):

- browser <-> media server (``/ws``): ``hello``/``get``/``stats``/``ack`` up,
  ``manifest``/``error`` and binary ``init_state``/``chunk`` down;
- browser <-> client daemon: binary ``open`` and forwarded ``chunk`` plus JSON ``seek`` up,
  binary ``init``/``segment`` and JSON ``status``/``error`` down.

Control messages are JSON objects (WebSocket text frames) whose kind is in ``type``.
Binary messages are ``4-byte big-endian header length + JSON header (with "type") +
payload``. This module is pure (no I/O): it builds wire bytes and turns untrusted bytes
into typed, validated messages or raises :class:`ProtocolError` with a code from
:class:`ErrorCode`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from prompts.chunk import MAX_CHUNK_BYTES
from prompts.stream_model import PREV_LATENT_RULES, size_problem

PROTOCOL_VERSION = 1

# --- limits (what a receiver accepts; larger input is refused with MESSAGE_TOO_LARGE) ---
MAX_CONTROL_BYTES = 16 * 1024  # bytes, one JSON control message sent by the browser or daemon
MAX_MANIFEST_MESSAGE_BYTES = 8 * 1024 * 1024  # bytes, server -> browser `manifest` text
MAX_HEADER_BYTES = 4 * 1024  # bytes, JSON header of a binary message
MAX_CHUNK_PAYLOAD_BYTES = 2 * MAX_CHUNK_BYTES  # bytes, switch prefix + chunk of one `chunk`
MAX_INIT_STATE_BYTES = 4 * 1024 * 1024  # bytes, init.bin carried by `open`
MAX_MEDIA_PAYLOAD_BYTES = 32 * 1024 * 1024  # bytes, fMP4 of one `init` or `segment`
MAX_STRING_CHARS = 512  # characters, free-text fields (user agent, ABR name, session)
MAX_MESSAGE_CHARS = 1024  # characters, the human text of an `error`
MAX_INDEX = 2**31 - 1  # chunk and level indices fit a signed 32-bit integer
MAX_EXTRA_STATS_FIELDS = 16  # unknown scalar fields of `stats` kept for telemetry

HEADER_LENGTH = struct.Struct(">I")  # the 4-byte big-endian header length prefix

# A channel id is a ladder directory's name: no separators, no leading dot (so never "..").
CHANNEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STATS_EVENTS = ("timer", "startup", "rebuffer", "play")


class ErrorCode(StrEnum):
    """Codes carried by `error` messages (and by ProtocolError)."""

    BAD_MESSAGE = "bad_message"  # not JSON / not an object / broken binary framing
    UNKNOWN_TYPE = "unknown_type"  # `type` missing or not valid on this link and direction
    BAD_FIELD = "bad_field"  # a field is missing, of the wrong type or out of range
    MESSAGE_TOO_LARGE = "message_too_large"  # larger than the receiver's limit
    UNSUPPORTED_VERSION = "unsupported_version"  # `version` is not PROTOCOL_VERSION
    HELLO_REQUIRED = "hello_required"  # `get`/`stats`/`ack` before a `hello`
    UNKNOWN_CHANNEL = "unknown_channel"  # no such channel in the catalog
    UNKNOWN_LEVEL = "unknown_level"  # level id not in the channel's manifest
    UNKNOWN_CHUNK = "unknown_chunk"  # chunk index outside a finished ladder
    NOT_AVAILABLE = "not_available"  # live: chunk not published yet, retry soon
    BEYOND_LIVE_EDGE = "beyond_live_edge"  # live: chunk far beyond the live edge
    RATE_LIMITED = "rate_limited"  # too many messages per second; the message was dropped
    SERVER_FULL = "server_full"  # maximum number of viewers reached; connection closes
    IDLE_TIMEOUT = "idle_timeout"  # nothing received for too long; connection closes
    GOING_AWAY = "going_away"  # server shutting down; connection closes
    INTERNAL = "internal"  # the server failed; the connection goes on
    # daemon link
    FORBIDDEN_ORIGIN = "forbidden_origin"  # page Origin not allowed by the daemon
    OPEN_REQUIRED = "open_required"  # `chunk`/`seek` before `open`
    GENERATOR_MISMATCH = "generator_mismatch"  # stream's generator_id != daemon's
    BAD_CHUNK = "bad_chunk"  # chunk payload failed prompts.chunk parsing
    BUSY = "busy"  # daemon queue full or another session active
    GENERATION_FAILED = "generation_failed"  # daemon could not generate/encode a chunk


# Codes after which the sender closes the connection, with the WebSocket close code it uses.
CLOSE_CODES: dict[ErrorCode, int] = {
    ErrorCode.UNSUPPORTED_VERSION: 1002,  # protocol error
    ErrorCode.SERVER_FULL: 1013,  # try again later
    ErrorCode.IDLE_TIMEOUT: 1000,  # normal closure
    ErrorCode.GOING_AWAY: 1001,  # going away
    ErrorCode.FORBIDDEN_ORIGIN: 1008,  # policy violation
}


class ProtocolError(Exception):
    """A refused message: ``code`` (an ErrorCode) and a one-line ``message``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = ErrorCode(code)
        self.message = message


# --------------------------------------------------------------------------- field checks


def _bad(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, message)


def _int(obj: dict[str, Any], key: str, *, minimum: int = 0, maximum: int = MAX_INDEX) -> int:
    value = obj.get(key)
    # bool is an int subclass in Python but not an integer on the wire
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"'{key}' must be an integer, got {_describe(value)}")
    if not minimum <= value <= maximum:
        raise _bad(f"'{key}' must be in [{minimum}, {maximum}], got {str(value)[:40]}")
    return value


def _float(obj: dict[str, Any], key: str, *, minimum: float = 0.0, maximum: float = 1e12) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(f"'{key}' must be a number, got {_describe(value)}")
    # compare before converting: float() of a 400-digit JSON integer raises OverflowError
    if (isinstance(value, float) and not math.isfinite(value)) or not minimum <= value <= maximum:
        raise _bad(f"'{key}' must be in [{minimum}, {maximum}], got {str(value)[:40]}")
    return float(value)


def _optional_float(obj: dict[str, Any], key: str, **limits: float) -> float | None:
    return None if obj.get(key) is None else _float(obj, key, **limits)


def _bool(obj: dict[str, Any], key: str, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"'{key}' must be true or false, got {_describe(value)}")
    return value


def _str(obj: dict[str, Any], key: str, *, max_chars: int = MAX_STRING_CHARS) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _bad(f"'{key}' must be a string, got {_describe(value)}")
    if len(value) > max_chars:
        raise _bad(f"'{key}' is longer than {max_chars} characters")
    return value


def _optional_str(
    obj: dict[str, Any], key: str, *, max_chars: int = MAX_STRING_CHARS
) -> str | None:
    return None if obj.get(key) is None else _str(obj, key, max_chars=max_chars)


def _optional_int(obj: dict[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise _bad(f"'{key}' must be an object, got {_describe(value)}")
    return value


def _describe(value: object) -> str:
    if value is None:
        return "nothing (missing or null)"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _check_version(obj: dict[str, Any], peer: str) -> int:
    version = obj.get("version")
    if type(version) is not int or version != PROTOCOL_VERSION:
        shown = repr(version)[:40]
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {shown} is not supported; this {peer} speaks {PROTOCOL_VERSION}",
        )
    return version


def validate_channel(name: object) -> str:
    """The channel id if it is a valid ladder directory name, else ProtocolError(BAD_FIELD)."""
    if not isinstance(name, str) or CHANNEL_PATTERN.fullmatch(name) is None:
        shown = repr(name)[:80]
        raise _bad(
            f"'channel' {shown} is not a channel name (letters, digits, '.', '_', '-'; "
            "first a letter or digit; at most 64)"
        )
    return name


# --------------------------------------------------------------------------- framing


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def decode_json_object(data: str | bytes, *, max_bytes: int) -> dict[str, Any]:
    """Parse one JSON object with a string ``type``; ProtocolError on anything else."""
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > max_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE, f"message of {size} bytes exceeds the limit of {max_bytes}"
        )
    try:
        obj = json.loads(data, parse_constant=_reject_constant)
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; deep nesting is a RecursionError
    except (ValueError, RecursionError) as error:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"not valid JSON: {str(error)[:120]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"a message must be a JSON object, got {_describe(obj)}"
        )
    if not isinstance(obj.get("type"), str):
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "a message needs a string 'type' field")
    return obj


def encode_json(fields: dict[str, Any]) -> str:
    """Compact JSON text of a control message (NaN/Infinity refused)."""
    return json.dumps(fields, separators=(",", ":"), allow_nan=False)


def encode_binary(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """``4-byte BE header length + JSON header + payload``."""
    head = encode_json(header).encode()
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError(f"binary header of {len(head)} bytes exceeds {MAX_HEADER_BYTES}")
    return b"".join((HEADER_LENGTH.pack(len(head)), head, payload))


def decode_binary(data: bytes, *, max_payload_bytes: int) -> tuple[dict[str, Any], bytes]:
    """Split a binary message into its JSON header (with ``type``) and payload."""
    if len(data) < HEADER_LENGTH.size:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"binary message of {len(data)} bytes is shorter than its length prefix",
        )
    (head_len,) = HEADER_LENGTH.unpack_from(data)
    if head_len > MAX_HEADER_BYTES:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"binary header length {head_len} exceeds the limit of {MAX_HEADER_BYTES}",
        )
    end = HEADER_LENGTH.size + head_len
    if end > len(data):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"binary header length {head_len} runs past the message end ({len(data)} bytes)",
        )
    payload_len = len(data) - end
    if payload_len > max_payload_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"payload of {payload_len} bytes exceeds the limit of {max_payload_bytes}",
        )
    header = decode_json_object(bytes(data[HEADER_LENGTH.size : end]), max_bytes=MAX_HEADER_BYTES)
    return header, bytes(data[end:])


# --------------------------------------------------------------------------- browser <-> server


@dataclass(frozen=True)
class Hello:
    """browser -> server: join ``channel`` (again to switch channel)."""

    TYPE: ClassVar[str] = "hello"
    channel: str
    version: int = PROTOCOL_VERSION
    abr: str | None = None
    user_agent: str | None = None

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> Hello:
        # version first, so a client of another version gets that answer, not a field error
        version = _check_version(obj, "server")
        return cls(
            channel=validate_channel(obj.get("channel")),
            version=version,
            abr=_optional_str(obj, "abr"),
            user_agent=_optional_str(obj, "user_agent"),
        )

    def encode(self) -> str:
        return encode_json(
            {
                "type": self.TYPE,
                "version": self.version,
                "channel": self.channel,
                "abr": self.abr,
                "user_agent": self.user_agent,
            }
        )


@dataclass(frozen=True)
class Get:
    """browser -> server: send chunk ``chunk`` of ``level`` (with the switch prefix if asked)."""

    TYPE: ClassVar[str] = "get"
    chunk: int
    level: int
    prefix: bool = False

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> Get:
        return cls(
            chunk=_int(obj, "chunk"),
            level=_int(obj, "level"),
            prefix=_bool(obj, "prefix", default=False),
        )

    def encode(self) -> str:
        return encode_json(
            {"type": self.TYPE, "chunk": self.chunk, "level": self.level, "prefix": self.prefix}
        )


@dataclass(frozen=True)
class Ack:
    """browser -> server: chunk ``chunk`` of ``level`` fully received (for telemetry)."""

    TYPE: ClassVar[str] = "ack"
    chunk: int
    level: int

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> Ack:
        return cls(chunk=_int(obj, "chunk"), level=_int(obj, "level"))

    def encode(self) -> str:
        return encode_json({"type": self.TYPE, "chunk": self.chunk, "level": self.level})


@dataclass(frozen=True)
class Stats:
    """browser -> server: a playback report (about once a second)."""

    TYPE: ClassVar[str] = "stats"
    KNOWN: ClassVar[frozenset[str]] = frozenset(
        {"type", "buffer_s", "stalls", "stall_s", "level", "throughput_kbps", "daemon_fps", "event"}
    )
    buffer_s: float
    stalls: int
    stall_s: float
    level: int
    throughput_kbps: float | None = None
    daemon_fps: float | None = None
    event: str = "timer"
    extra: dict[str, str | int | float | bool | None] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> Stats:
        event = obj.get("event", "timer")
        if event not in STATS_EVENTS:
            raise _bad(f"'event' must be one of {', '.join(STATS_EVENTS)}, got {str(event)[:40]!r}")
        extra: dict[str, str | int | float | bool | None] = {}
        for key, value in obj.items():
            if key in cls.KNOWN or len(extra) >= MAX_EXTRA_STATS_FIELDS:
                continue
            # unknown fields are kept for telemetry only when short scalars
            if len(key) <= 64 and (
                value is None
                or isinstance(value, bool | int)
                or (isinstance(value, float) and math.isfinite(value))
                or (isinstance(value, str) and len(value) <= 128)
            ):
                extra[key] = value
        return cls(
            buffer_s=_float(obj, "buffer_s", maximum=1e6),
            stalls=_int(obj, "stalls"),
            stall_s=_float(obj, "stall_s", maximum=1e9),
            level=_int(obj, "level"),
            throughput_kbps=_optional_float(obj, "throughput_kbps"),
            daemon_fps=_optional_float(obj, "daemon_fps", maximum=1e6),
            event=event,
            extra=extra,
        )

    def encode(self) -> str:
        return encode_json(
            {
                **self.extra,
                "type": self.TYPE,
                "buffer_s": self.buffer_s,
                "stalls": self.stalls,
                "stall_s": self.stall_s,
                "level": self.level,
                "throughput_kbps": self.throughput_kbps,
                "daemon_fps": self.daemon_fps,
                "event": self.event,
            }
        )


@dataclass(frozen=True)
class ManifestMessage:
    """server -> browser: a channel's manifest.json content (again whenever it changed)."""

    TYPE: ClassVar[str] = "manifest"
    channel: str
    manifest: dict[str, Any]

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> ManifestMessage:
        return cls(channel=validate_channel(obj.get("channel")), manifest=_object(obj, "manifest"))

    def encode(self) -> str:
        return encode_json({"type": self.TYPE, "channel": self.channel, "manifest": self.manifest})


@dataclass(frozen=True)
class ErrorMessage:
    """Either side -> peer: a refused request or a closing notice."""

    TYPE: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    chunk: int | None = None  # the request it answers, when it answers a `get`
    level: int | None = None

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> ErrorMessage:
        code = obj.get("code")
        if not isinstance(code, str) or code not in ErrorCode._value2member_map_:
            raise _bad(f"'code' {str(code)[:40]!r} is not a known error code")
        return cls(
            code=ErrorCode(code),
            message=_str(obj, "message", max_chars=MAX_MESSAGE_CHARS),
            chunk=_optional_int(obj, "chunk"),
            level=_optional_int(obj, "level"),
        )

    @classmethod
    def from_error(
        cls, error: ProtocolError, *, chunk: int | None = None, level: int | None = None
    ) -> ErrorMessage:
        """The `error` message reporting ``error``."""
        return cls(
            code=error.code, message=error.message[:MAX_MESSAGE_CHARS], chunk=chunk, level=level
        )

    def encode(self) -> str:
        fields: dict[str, Any] = {
            "type": self.TYPE,
            "code": str(self.code),
            "message": self.message,
        }
        if self.chunk is not None:
            fields["chunk"] = self.chunk
        if self.level is not None:
            fields["level"] = self.level
        return encode_json(fields)


@dataclass(frozen=True)
class ChunkMessage:
    """server -> browser, then browser -> daemon unchanged: one prompt chunk (+ switch prefix)."""

    TYPE: ClassVar[str] = "chunk"
    channel: str
    level: int
    chunk: int
    data: bytes  # the chunk file's bytes (prompts.chunk format)
    prefix: bytes = b""  # the switch prefix (prompts.chunk format) or empty

    @classmethod
    def from_parts(cls, header: dict[str, Any], payload: bytes) -> ChunkMessage:
        prefix_bytes = _int(header, "prefix_bytes", maximum=MAX_CHUNK_PAYLOAD_BYTES)
        chunk_bytes = _int(header, "chunk_bytes", maximum=MAX_CHUNK_PAYLOAD_BYTES)
        if prefix_bytes + chunk_bytes != len(payload):
            raise _bad(
                f"prefix_bytes {prefix_bytes} + chunk_bytes {chunk_bytes} != payload of {len(payload)} bytes"
            )
        return cls(
            channel=validate_channel(header.get("channel")),
            level=_int(header, "level"),
            chunk=_int(header, "chunk"),
            data=payload[prefix_bytes:],
            prefix=payload[:prefix_bytes],
        )

    def encode(self) -> bytes:
        return encode_chunk_message(self.channel, self.level, self.chunk, self.data, self.prefix)


@dataclass(frozen=True)
class InitStateMessage:
    """server -> browser, after each `manifest` answering a `hello`: the channel's init.bin."""

    TYPE: ClassVar[str] = "init_state"
    channel: str
    data: bytes  # init.bin (prompts.init_state format); the page passes it to the daemon's `open`

    @classmethod
    def from_parts(cls, header: dict[str, Any], payload: bytes) -> InitStateMessage:
        if len(payload) > MAX_INIT_STATE_BYTES:
            raise ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"init state of {len(payload)} bytes exceeds {MAX_INIT_STATE_BYTES}",
            )
        return cls(channel=validate_channel(header.get("channel")), data=payload)

    def encode(self) -> bytes:
        return encode_binary({"type": self.TYPE, "channel": self.channel}, self.data)


def encode_chunk_message(
    channel: str, level: int, chunk: int, data: bytes, prefix: bytes = b""
) -> bytes:
    """Wire bytes of a `chunk` message without building a ChunkMessage (the server's hot path)."""
    header = {
        "type": ChunkMessage.TYPE,
        "channel": channel,
        "level": level,
        "chunk": chunk,
        "prefix_bytes": len(prefix),
        "chunk_bytes": len(data),
    }
    return encode_binary(header, prefix + data if prefix else data)


# --------------------------------------------------------------------------- browser <-> daemon


@dataclass(frozen=True)
class StreamSetup:
    """The stream parameters a daemon needs to generate a channel (from its manifest)."""

    generator_id: str
    width: int
    height: int
    fps: float
    noise_seed: int
    prev_latent_weight: float
    prev_latent_rule: str
    chunk_frames: int

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> StreamSetup:
        rule = obj.get("prev_latent_rule")
        if rule not in PREV_LATENT_RULES:
            raise _bad(
                f"'prev_latent_rule' must be one of {', '.join(PREV_LATENT_RULES)}, got {str(rule)[:40]!r}"
            )
        width, height = (
            _int(obj, "width", maximum=8192),
            _int(obj, "height", maximum=8192),
        )
        problem = size_problem(width, height)
        if problem is not None:
            raise _bad(f"'width' and 'height': {problem}")
        return cls(
            generator_id=_str(obj, "generator_id", max_chars=128),
            width=width,
            height=height,
            fps=_float(obj, "fps", minimum=1e-3, maximum=1000.0),
            noise_seed=_int(obj, "noise_seed", maximum=2**32 - 1),
            prev_latent_weight=_float(obj, "prev_latent_weight", maximum=1.0),
            prev_latent_rule=rule,
            chunk_frames=_int(obj, "chunk_frames", minimum=1, maximum=100_000),
        )

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> StreamSetup:
        """The setup a page sends for a channel whose manifest.json is ``manifest``."""
        return cls.from_fields(
            {**manifest, "generator_id": _object(manifest, "generator").get("id")}
        )

    def to_fields(self) -> dict[str, Any]:
        return {
            "generator_id": self.generator_id,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "noise_seed": self.noise_seed,
            "prev_latent_weight": self.prev_latent_weight,
            "prev_latent_rule": self.prev_latent_rule,
            "chunk_frames": self.chunk_frames,
        }


@dataclass(frozen=True)
class Open:
    """page -> daemon: start a generation session; payload = the channel's init.bin."""

    TYPE: ClassVar[str] = "open"
    stream: StreamSetup
    init_state: bytes
    session: str | None = None
    version: int = PROTOCOL_VERSION

    @classmethod
    def from_parts(cls, header: dict[str, Any], payload: bytes) -> Open:
        version = _check_version(header, "daemon")
        if len(payload) > MAX_INIT_STATE_BYTES:
            raise ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"init state of {len(payload)} bytes exceeds {MAX_INIT_STATE_BYTES}",
            )
        return cls(
            stream=StreamSetup.from_fields(_object(header, "stream")),
            init_state=payload,
            session=_optional_str(header, "session", max_chars=128),
            version=version,
        )

    def encode(self) -> bytes:
        header: dict[str, Any] = {
            "type": self.TYPE,
            "version": self.version,
            "stream": self.stream.to_fields(),
        }
        if self.session is not None:
            header["session"] = self.session
        return encode_binary(header, self.init_state)


@dataclass(frozen=True)
class Seek:
    """page -> daemon: the next chunk is not the successor of the last one."""

    TYPE: ClassVar[str] = "seek"
    chunk: int

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> Seek:
        return cls(chunk=_int(obj, "chunk"))

    def encode(self) -> str:
        return encode_json({"type": self.TYPE, "chunk": self.chunk})


@dataclass(frozen=True)
class InitSegment:
    """daemon -> page: the fMP4 init segment (ftyp+moov) and its MSE MIME type."""

    TYPE: ClassVar[str] = "init"
    mime: str
    data: bytes

    @classmethod
    def from_parts(cls, header: dict[str, Any], payload: bytes) -> InitSegment:
        return cls(mime=_str(header, "mime", max_chars=256), data=payload)

    def encode(self) -> bytes:
        return encode_binary({"type": self.TYPE, "mime": self.mime}, self.data)


@dataclass(frozen=True)
class MediaSegment:
    """daemon -> page: one fMP4 media segment (moof+mdat, starts with a keyframe) for a chunk."""

    TYPE: ClassVar[str] = "segment"
    level: int
    chunk: int
    frames: int
    generation_ms: float
    encode_ms: float
    data: bytes

    @classmethod
    def from_parts(cls, header: dict[str, Any], payload: bytes) -> MediaSegment:
        return cls(
            level=_int(header, "level"),
            chunk=_int(header, "chunk"),
            frames=_int(header, "frames", maximum=100_000),
            generation_ms=_float(header, "generation_ms", maximum=1e9),
            encode_ms=_float(header, "encode_ms", maximum=1e9),
            data=payload,
        )

    def encode(self) -> bytes:
        return encode_binary(
            {
                "type": self.TYPE,
                "level": self.level,
                "chunk": self.chunk,
                "frames": self.frames,
                "generation_ms": self.generation_ms,
                "encode_ms": self.encode_ms,
            },
            self.data,
        )


@dataclass(frozen=True)
class Status:
    """daemon -> page: generation speed and queue (about once a second)."""

    TYPE: ClassVar[str] = "status"
    fps: float
    queue_depth: int
    device: str
    generator_id: str

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> Status:
        return cls(
            fps=_float(obj, "fps", maximum=1e6),
            queue_depth=_int(obj, "queue_depth"),
            device=_str(obj, "device", max_chars=128),
            generator_id=_str(obj, "generator_id", max_chars=128),
        )

    def encode(self) -> str:
        return encode_json(
            {
                "type": self.TYPE,
                "fps": self.fps,
                "queue_depth": self.queue_depth,
                "device": self.device,
                "generator_id": self.generator_id,
            }
        )


# --------------------------------------------------------------------------- parsers per direction

ClientMessage = Hello | Get | Stats | Ack
ServerMessage = ManifestMessage | ErrorMessage | ChunkMessage | InitStateMessage
PageMessage = Open | ChunkMessage | Seek
DaemonMessage = InitSegment | MediaSegment | Status | ErrorMessage

_CLIENT_TEXT: dict[str, Any] = {m.TYPE: m for m in (Hello, Get, Stats, Ack)}
_SERVER_TEXT: dict[str, Any] = {m.TYPE: m for m in (ManifestMessage, ErrorMessage)}
_SERVER_BINARY: dict[str, Any] = {m.TYPE: m for m in (ChunkMessage, InitStateMessage)}
_PAGE_TEXT: dict[str, Any] = {Seek.TYPE: Seek}
_PAGE_BINARY: dict[str, Any] = {m.TYPE: m for m in (Open, ChunkMessage)}
_DAEMON_TEXT: dict[str, Any] = {m.TYPE: m for m in (Status, ErrorMessage)}
_DAEMON_BINARY: dict[str, Any] = {m.TYPE: m for m in (InitSegment, MediaSegment)}


def _lookup(table: dict[str, Any], kind: str, link: str) -> Any:
    try:
        return table[kind]
    except KeyError:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"type {kind[:40]!r} is not valid on {link} (expected {', '.join(table)})",
        ) from None


def _parse_text(data: str | bytes, table: dict[str, Any], link: str, max_bytes: int) -> Any:
    obj = decode_json_object(data, max_bytes=max_bytes)
    return _lookup(table, obj["type"], link).from_fields(obj)


def _parse_binary(data: bytes, table: dict[str, Any], link: str, max_payload: int) -> Any:
    header, payload = decode_binary(data, max_payload_bytes=max_payload)
    return _lookup(table, header["type"], link).from_parts(header, payload)


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Validate a browser -> server message (JSON, sent as text or binary frame)."""
    return _parse_text(data, _CLIENT_TEXT, "browser -> server", MAX_CONTROL_BYTES)


def parse_server_message(data: str | bytes) -> ServerMessage:
    """Validate a server -> browser message: ``str`` = text frame, ``bytes`` = binary frame."""
    if isinstance(data, str):
        return _parse_text(data, _SERVER_TEXT, "server -> browser text", MAX_MANIFEST_MESSAGE_BYTES)
    return _parse_binary(data, _SERVER_BINARY, "server -> browser binary", MAX_CHUNK_PAYLOAD_BYTES)


def parse_page_message(data: str | bytes) -> PageMessage:
    """Validate a page -> daemon message: ``str`` = text frame, ``bytes`` = binary frame."""
    if isinstance(data, str):
        return _parse_text(data, _PAGE_TEXT, "page -> daemon text", MAX_CONTROL_BYTES)
    return _parse_binary(data, _PAGE_BINARY, "page -> daemon binary", MAX_CHUNK_PAYLOAD_BYTES)


def parse_daemon_message(data: str | bytes) -> DaemonMessage:
    """Validate a daemon -> page message: ``str`` = text frame, ``bytes`` = binary frame."""
    if isinstance(data, str):
        return _parse_text(data, _DAEMON_TEXT, "daemon -> page text", MAX_CONTROL_BYTES)
    return _parse_binary(data, _DAEMON_BINARY, "daemon -> page binary", MAX_MEDIA_PAYLOAD_BYTES)


# The largest frame each receiver lets its WebSocket library accept (frames above it are cut
# at the socket with close code 1009; smaller oversize frames get a MESSAGE_TOO_LARGE error).
MAX_FRAME_SERVER_RECEIVES = 1024 * 1024  # bytes
MAX_FRAME_DAEMON_RECEIVES = HEADER_LENGTH.size + MAX_HEADER_BYTES + MAX_CHUNK_PAYLOAD_BYTES  # bytes
MAX_FRAME_PAGE_RECEIVES = HEADER_LENGTH.size + MAX_HEADER_BYTES + MAX_MEDIA_PAYLOAD_BYTES  # bytes
