"""The daemon link, page <-> client daemon: binary ``open`` and the forwarded ``chunk`` plus JSON
``seek`` up, binary ``init``/``segment`` and JSON ``status``/``error`` down (``docs/protocol.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from prompts.init_state import MAX_INIT_STATE_BYTES
from prompts.manifest import MAX_CHUNK_FRAMES
from prompts.stream_model import PREV_LATENT_RULES, size_problem
from wire.errors import ErrorCode, ProtocolError
from wire.framing import (
    HEADER_LENGTH,
    MAX_CONTROL_BYTES,
    MAX_HEADER_BYTES,
    PROTOCOL_VERSION,
    BinaryMessageType,
    ErrorMessage,
    TextMessageType,
    bad_field,
    check_version,
    encode_binary,
    encode_json,
    float_field,
    int_field,
    object_field,
    optional_str_field,
    parse_binary,
    parse_text,
    str_field,
)
from wire.media import MAX_CHUNK_PAYLOAD_BYTES, ChunkMessage

MAX_MEDIA_PAYLOAD_BYTES = 32 * 1024 * 1024  # bytes, fMP4 of one `init` or `segment`
# The largest frame each end lets its WebSocket library accept (frames above it are cut at the
# socket with close code 1009; smaller oversize frames get a MESSAGE_TOO_LARGE error).
MAX_FRAME_DAEMON_RECEIVES = HEADER_LENGTH.size + MAX_HEADER_BYTES + MAX_CHUNK_PAYLOAD_BYTES  # bytes
MAX_FRAME_PAGE_RECEIVES = HEADER_LENGTH.size + MAX_HEADER_BYTES + MAX_MEDIA_PAYLOAD_BYTES  # bytes


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
            raise bad_field(
                f"'prev_latent_rule' must be one of {', '.join(PREV_LATENT_RULES)}, got {str(rule)[:40]!r}"
            )
        width, height = (
            int_field(obj, "width", maximum=8192),
            int_field(obj, "height", maximum=8192),
        )
        problem = size_problem(width, height)
        if problem is not None:
            raise bad_field(f"'width' and 'height': {problem}")
        return cls(
            generator_id=str_field(obj, "generator_id", max_chars=128),
            width=width,
            height=height,
            fps=float_field(obj, "fps", minimum=1e-3, maximum=1000.0),
            noise_seed=int_field(obj, "noise_seed", maximum=2**32 - 1),
            prev_latent_weight=float_field(obj, "prev_latent_weight", maximum=1.0),
            prev_latent_rule=rule,
            chunk_frames=int_field(obj, "chunk_frames", minimum=1, maximum=MAX_CHUNK_FRAMES),
        )

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> StreamSetup:
        """The setup a page sends for a channel whose manifest.json is ``manifest``."""
        return cls.from_fields(
            {**manifest, "generator_id": object_field(manifest, "generator").get("id")}
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
        version = check_version(header, "daemon")
        if len(payload) > MAX_INIT_STATE_BYTES:
            raise ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"init state of {len(payload)} bytes exceeds {MAX_INIT_STATE_BYTES}",
            )
        return cls(
            stream=StreamSetup.from_fields(object_field(header, "stream")),
            init_state=payload,
            session=optional_str_field(header, "session", max_chars=128),
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
        return cls(chunk=int_field(obj, "chunk"))

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
        return cls(mime=str_field(header, "mime", max_chars=256), data=payload)

    def encode(self) -> bytes:
        return encode_binary({"type": self.TYPE, "mime": self.mime}, self.data)


@dataclass(frozen=True)
class MediaSegment:
    """daemon -> page: one GOP of a chunk as an fMP4 media segment (moof+mdat, keyframe first)."""

    TYPE: ClassVar[str] = "segment"
    level: int
    chunk: int
    part: int  # the GOP's index in the chunk
    parts: int  # GOPs in the chunk: it is complete with part parts - 1
    frames: int  # frames of this GOP
    generation_ms: float  # from the chunk's generation start until this GOP's frames were all in
    encode_ms: float  # encoding this GOP
    data: bytes

    @classmethod
    def from_parts(cls, header: dict[str, Any], payload: bytes) -> MediaSegment:
        # at most one GOP segment per frame of the chunk
        parts = int_field(header, "parts", minimum=1, maximum=MAX_CHUNK_FRAMES)
        return cls(
            level=int_field(header, "level"),
            chunk=int_field(header, "chunk"),
            part=int_field(header, "part", maximum=parts - 1),
            parts=parts,
            frames=int_field(header, "frames", maximum=MAX_CHUNK_FRAMES),
            generation_ms=float_field(header, "generation_ms", maximum=1e9),
            encode_ms=float_field(header, "encode_ms", maximum=1e9),
            data=payload,
        )

    def encode(self) -> bytes:
        return encode_binary(
            {
                "type": self.TYPE,
                "level": self.level,
                "chunk": self.chunk,
                "part": self.part,
                "parts": self.parts,
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
            fps=float_field(obj, "fps", maximum=1e6),
            queue_depth=int_field(obj, "queue_depth"),
            device=str_field(obj, "device", max_chars=128),
            generator_id=str_field(obj, "generator_id", max_chars=128),
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


PageMessage = Open | ChunkMessage | Seek
DaemonMessage = InitSegment | MediaSegment | Status | ErrorMessage

_PAGE_TEXT: dict[str, TextMessageType[PageMessage]] = {Seek.TYPE: Seek}
_PAGE_BINARY: dict[str, BinaryMessageType[PageMessage]] = {m.TYPE: m for m in (Open, ChunkMessage)}
_DAEMON_TEXT: dict[str, TextMessageType[DaemonMessage]] = {
    m.TYPE: m for m in (Status, ErrorMessage)
}
_DAEMON_BINARY: dict[str, BinaryMessageType[DaemonMessage]] = {
    m.TYPE: m for m in (InitSegment, MediaSegment)
}


def parse_page_message(data: str | bytes) -> PageMessage:
    """Validate a page -> daemon message: ``str`` = text frame, ``bytes`` = binary frame."""
    if isinstance(data, str):
        return parse_text(data, _PAGE_TEXT, "page -> daemon text", MAX_CONTROL_BYTES)
    return parse_binary(data, _PAGE_BINARY, "page -> daemon binary", MAX_CHUNK_PAYLOAD_BYTES)


def parse_daemon_message(data: str | bytes) -> DaemonMessage:
    """Validate a daemon -> page message: ``str`` = text frame, ``bytes`` = binary frame."""
    if isinstance(data, str):
        return parse_text(data, _DAEMON_TEXT, "daemon -> page text", MAX_CONTROL_BYTES)
    return parse_binary(data, _DAEMON_BINARY, "daemon -> page binary", MAX_MEDIA_PAYLOAD_BYTES)
