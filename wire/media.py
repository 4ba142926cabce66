"""The media link, page <-> media server (``/ws``): ``hello``/``get``/``stats``/``ack`` up,
``manifest``/``error`` and binary ``init_state``/``chunk`` down (spec: ``docs/protocol.md``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from prompts.chunk import MAX_CHUNK_BYTES
from prompts.init_state import MAX_INIT_STATE_BYTES
from wire.errors import ErrorCode, ProtocolError
from wire.framing import (
    MAX_CONTROL_BYTES,
    PROTOCOL_VERSION,
    BinaryMessageType,
    ErrorMessage,
    TextMessageType,
    bad_field,
    bool_field,
    check_version,
    encode_binary,
    encode_json,
    float_field,
    int_field,
    object_field,
    optional_float_field,
    optional_str_field,
    parse_binary,
    parse_text,
)

MAX_MANIFEST_MESSAGE_BYTES = 8 * 1024 * 1024  # bytes, server -> browser `manifest` text
MAX_CHUNK_PAYLOAD_BYTES = 2 * MAX_CHUNK_BYTES  # bytes, switch prefix + chunk of one `chunk`
MAX_EXTRA_STATS_FIELDS = 16  # unknown scalar fields of `stats` kept for telemetry
MAX_EXTRA_KEY_CHARS = 64  # characters of a kept field's name
MAX_EXTRA_STRING_CHARS = 128  # characters of a kept string value
MAX_EXTRA_INTEGER = 2**53  # |value| of a kept integer (JavaScript's exact integers)
MAX_EXTRA_STATS_BYTES = 1024  # bytes of the kept fields as JSON; fields beyond are dropped
# The largest frame the server lets its WebSocket library accept (frames above it are cut at
# the socket with close code 1009; smaller oversize frames get a MESSAGE_TOO_LARGE error).
MAX_FRAME_SERVER_RECEIVES = 1024 * 1024  # bytes

# A channel id is a ladder directory's name: no separators, no leading dot (so never "..").
CHANNEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STATS_EVENTS = ("timer", "startup", "rebuffer", "play")


def validate_channel(name: object) -> str:
    """The channel id if it is a valid ladder directory name, else ProtocolError(BAD_FIELD)."""
    if not isinstance(name, str) or CHANNEL_PATTERN.fullmatch(name) is None:
        shown = repr(name)[:80]
        raise bad_field(
            f"'channel' {shown} is not a channel name (letters, digits, '.', '_', '-'; "
            "first a letter or digit; at most 64)"
        )
    return name


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
        version = check_version(obj, "server")
        return cls(
            channel=validate_channel(obj.get("channel")),
            version=version,
            abr=optional_str_field(obj, "abr"),
            user_agent=optional_str_field(obj, "user_agent"),
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
            chunk=int_field(obj, "chunk"),
            level=int_field(obj, "level"),
            prefix=bool_field(obj, "prefix", default=False),
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
        return cls(chunk=int_field(obj, "chunk"), level=int_field(obj, "level"))

    def encode(self) -> str:
        return encode_json({"type": self.TYPE, "chunk": self.chunk, "level": self.level})


@dataclass(frozen=True)
class Stats:
    """browser -> server: a playback report (about once a second)."""

    TYPE: ClassVar[str] = "stats"
    KNOWN: ClassVar[frozenset[str]] = frozenset(
        {
            "type", "buffer_s", "stalls", "stall_s", "level", "throughput_kbps", "daemon_fps",
            "event", "behind_live_s",
        }
    )  # fmt: skip
    buffer_s: float
    stalls: int
    stall_s: float
    level: int
    throughput_kbps: float | None = None
    daemon_fps: float | None = None
    event: str = "timer"
    # live channels: seconds between the playhead and the live edge (the end of the newest
    # published chunk); null on finished ladders
    behind_live_s: float | None = None
    extra: dict[str, str | int | float | bool | None] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> Stats:
        event = obj.get("event", "timer")
        if event not in STATS_EVENTS:
            raise bad_field(
                f"'event' must be one of {', '.join(STATS_EVENTS)}, got {str(event)[:40]!r}"
            )
        extra: dict[str, str | int | float | bool | None] = {}
        size = 2  # the braces of the JSON object
        for key, value in obj.items():
            if key in cls.KNOWN or len(extra) >= MAX_EXTRA_STATS_FIELDS:
                continue
            # unknown fields are kept for telemetry only when short scalars, within a byte bound
            if len(key) <= MAX_EXTRA_KEY_CHARS and _short_scalar(value):
                cost = len(encode_json({key: value})) - 1  # "key":value and a comma
                if size + cost <= MAX_EXTRA_STATS_BYTES:
                    extra[key] = value
                    size += cost
        return cls(
            buffer_s=float_field(obj, "buffer_s", maximum=1e6),
            stalls=int_field(obj, "stalls"),
            stall_s=float_field(obj, "stall_s", maximum=1e9),
            level=int_field(obj, "level"),
            throughput_kbps=optional_float_field(obj, "throughput_kbps"),
            daemon_fps=optional_float_field(obj, "daemon_fps", maximum=1e6),
            event=event,
            behind_live_s=optional_float_field(obj, "behind_live_s", maximum=1e9),
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
                "behind_live_s": self.behind_live_s,
            }
        )


def _short_scalar(value: object) -> bool:
    """A value telemetry may store: null, a boolean, a bounded integer, a finite number or a
    short string."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_EXTRA_INTEGER <= value <= MAX_EXTRA_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_EXTRA_STRING_CHARS


@dataclass(frozen=True)
class ManifestMessage:
    """server -> browser: a channel's manifest.json content (again whenever it changed)."""

    TYPE: ClassVar[str] = "manifest"
    channel: str
    manifest: dict[str, Any]

    @classmethod
    def from_fields(cls, obj: dict[str, Any]) -> ManifestMessage:
        return cls(
            channel=validate_channel(obj.get("channel")), manifest=object_field(obj, "manifest")
        )

    def encode(self) -> str:
        return encode_json({"type": self.TYPE, "channel": self.channel, "manifest": self.manifest})


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
        prefix_bytes = int_field(header, "prefix_bytes", maximum=MAX_CHUNK_PAYLOAD_BYTES)
        chunk_bytes = int_field(header, "chunk_bytes", maximum=MAX_CHUNK_PAYLOAD_BYTES)
        if prefix_bytes + chunk_bytes != len(payload):
            raise bad_field(
                f"prefix_bytes {prefix_bytes} + chunk_bytes {chunk_bytes} != payload of {len(payload)} bytes"
            )
        return cls(
            channel=validate_channel(header.get("channel")),
            level=int_field(header, "level"),
            chunk=int_field(header, "chunk"),
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


ClientMessage = Hello | Get | Stats | Ack
ServerMessage = ManifestMessage | ErrorMessage | ChunkMessage | InitStateMessage

_CLIENT_TEXT: dict[str, TextMessageType[ClientMessage]] = {
    m.TYPE: m for m in (Hello, Get, Stats, Ack)
}
_SERVER_TEXT: dict[str, TextMessageType[ServerMessage]] = {
    m.TYPE: m for m in (ManifestMessage, ErrorMessage)
}
_SERVER_BINARY: dict[str, BinaryMessageType[ServerMessage]] = {
    m.TYPE: m for m in (ChunkMessage, InitStateMessage)
}


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Validate a browser -> server message (JSON, sent as text or binary frame)."""
    return parse_text(data, _CLIENT_TEXT, "browser -> server", MAX_CONTROL_BYTES)


def parse_server_message(data: str | bytes) -> ServerMessage:
    """Validate a server -> browser message: ``str`` = text frame, ``bytes`` = binary frame."""
    if isinstance(data, str):
        return parse_text(data, _SERVER_TEXT, "server -> browser text", MAX_MANIFEST_MESSAGE_BYTES)
    return parse_binary(data, _SERVER_BINARY, "server -> browser binary", MAX_CHUNK_PAYLOAD_BYTES)
