"""The shared framing of both links: limits, JSON control messages, binary messages, field checks.

Control messages are JSON objects (WebSocket text frames) whose kind is in ``type``. Binary
messages are ``4-byte big-endian header length + JSON header (with "type") + payload``. Pure
functions: untrusted bytes become validated values or a :class:`~wire.errors.ProtocolError`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from wire.errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = 1

# --- limits (what a receiver accepts; larger input is refused with MESSAGE_TOO_LARGE) ---
MAX_CONTROL_BYTES = 16 * 1024  # bytes, one JSON control message sent by the browser or daemon
MAX_HEADER_BYTES = 4 * 1024  # bytes, JSON header of a binary message
MAX_STRING_CHARS = 512  # characters, free-text fields (user agent, ABR name, session)
MAX_MESSAGE_CHARS = 1024  # characters, the human text of an `error`
MAX_INDEX = 2**31 - 1  # chunk and level indices fit a signed 32-bit integer

HEADER_LENGTH = struct.Struct(">I")  # the 4-byte big-endian header length prefix


# --------------------------------------------------------------------------- field checks


def bad_field(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, message)


def int_field(obj: dict[str, Any], key: str, *, minimum: int = 0, maximum: int = MAX_INDEX) -> int:
    value = obj.get(key)
    # bool is an int subclass in Python but not an integer on the wire
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_field(f"'{key}' must be an integer, got {describe(value)}")
    if not minimum <= value <= maximum:
        raise bad_field(f"'{key}' must be in [{minimum}, {maximum}], got {str(value)[:40]}")
    return value


def float_field(
    obj: dict[str, Any], key: str, *, minimum: float = 0.0, maximum: float = 1e12
) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_field(f"'{key}' must be a number, got {describe(value)}")
    # compare before converting: float() of a 400-digit JSON integer raises OverflowError
    if (isinstance(value, float) and not math.isfinite(value)) or not minimum <= value <= maximum:
        raise bad_field(f"'{key}' must be in [{minimum}, {maximum}], got {str(value)[:40]}")
    return float(value)


def optional_float_field(obj: dict[str, Any], key: str, **limits: float) -> float | None:
    return None if obj.get(key) is None else float_field(obj, key, **limits)


def bool_field(obj: dict[str, Any], key: str, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise bad_field(f"'{key}' must be true or false, got {describe(value)}")
    return value


def str_field(obj: dict[str, Any], key: str, *, max_chars: int = MAX_STRING_CHARS) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise bad_field(f"'{key}' must be a string, got {describe(value)}")
    if len(value) > max_chars:
        raise bad_field(f"'{key}' is longer than {max_chars} characters")
    return value


def optional_str_field(
    obj: dict[str, Any], key: str, *, max_chars: int = MAX_STRING_CHARS
) -> str | None:
    return None if obj.get(key) is None else str_field(obj, key, max_chars=max_chars)


def optional_int_field(obj: dict[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else int_field(obj, key)


def object_field(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise bad_field(f"'{key}' must be an object, got {describe(value)}")
    return value


def describe(value: object) -> str:
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


def check_version(obj: dict[str, Any], peer: str) -> int:
    version = obj.get("version")
    if type(version) is not int or version != PROTOCOL_VERSION:
        shown = repr(version)[:40]
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {shown} is not supported; this {peer} speaks {PROTOCOL_VERSION}",
        )
    return version


# --------------------------------------------------------------------------- coding


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
            ErrorCode.BAD_MESSAGE, f"a message must be a JSON object, got {describe(obj)}"
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


# --------------------------------------------------------------------------- shared messages


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
            raise bad_field(f"'code' {str(code)[:40]!r} is not a known error code")
        return cls(
            code=ErrorCode(code),
            message=str_field(obj, "message", max_chars=MAX_MESSAGE_CHARS),
            chunk=optional_int_field(obj, "chunk"),
            level=optional_int_field(obj, "level"),
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


# --------------------------------------------------------------------------- parsing by table


Entry = TypeVar("Entry")
Message = TypeVar("Message")
Message_co = TypeVar("Message_co", covariant=True)


class TextMessageType(Protocol[Message_co]):
    """A message class read from a JSON object: its ``from_fields`` classmethod."""

    def from_fields(self, obj: dict[str, Any], /) -> Message_co: ...


class BinaryMessageType(Protocol[Message_co]):
    """A message class read from a binary frame: its ``from_parts`` classmethod."""

    def from_parts(self, header: dict[str, Any], payload: bytes, /) -> Message_co: ...


def lookup(table: Mapping[str, Entry], kind: str, link: str) -> Entry:
    try:
        return table[kind]
    except KeyError:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"type {kind[:40]!r} is not valid on {link} (expected {', '.join(table)})",
        ) from None


def parse_text(
    data: str | bytes, table: Mapping[str, TextMessageType[Message]], link: str, max_bytes: int
) -> Message:
    obj = decode_json_object(data, max_bytes=max_bytes)
    return lookup(table, obj["type"], link).from_fields(obj)


def parse_binary(
    data: bytes, table: Mapping[str, BinaryMessageType[Message]], link: str, max_payload: int
) -> Message:
    header, payload = decode_binary(data, max_payload_bytes=max_payload)
    return lookup(table, header["type"], link).from_parts(header, payload)
