"""Error codes of both links and the exception that carries one."""

from __future__ import annotations

from enum import StrEnum


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
    OUTSIDE_WINDOW = "outside_window"  # live: chunk older than the channel's window start
    GAP = "gap"  # live: nothing was published for this chunk of this level; skip it
    RATE_LIMITED = "rate_limited"  # too many messages per second; the message was dropped
    SERVER_FULL = "server_full"  # maximum number of viewers reached; connection closes
    IDLE_TIMEOUT = "idle_timeout"  # nothing received for too long; connection closes
    GOING_AWAY = "going_away"  # server shutting down; connection closes
    # a ladder file the manifest names is missing, not a regular file inside the media
    # folder, of the wrong size or unparsable (the server's media folder is broken; logged)
    MEDIA_UNREADABLE = "media_unreadable"
    INTERNAL = "internal"  # the server failed; the connection goes on
    # daemon link
    FORBIDDEN_ORIGIN = "forbidden_origin"  # page Origin not allowed by the daemon
    OPEN_REQUIRED = "open_required"  # `chunk`/`seek` before `open`
    GENERATOR_MISMATCH = "generator_mismatch"  # stream's generator_id != daemon's
    BAD_CHUNK = "bad_chunk"  # chunk payload failed prompts.chunk parsing
    # an `open` (not one replacing the page's own stream) while the daemon already generates
    # its --max-sessions streams (client_daemon.daemon.Daemon.claim_session); retry later
    BUSY = "busy"
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
