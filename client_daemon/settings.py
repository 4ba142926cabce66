"""Daemon settings and their defaults (light: imported by the CLI before anything heavy)."""

from __future__ import annotations

from dataclasses import dataclass, field

from client_daemon.muxer import NEAR_LOSSLESS, EncoderSettings

DEFAULT_PORT = 9090
# the media server's default origin (promptus serve listens on 8080)
DEFAULT_ALLOWED_ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
STATUS_INTERVAL_S = 1.0  # seconds between `status` messages
QUEUE_DEPTH = 2  # chunks accepted and waiting for the generation thread, per page


@dataclass(frozen=True)
class DaemonSettings:
    """Where the daemon listens, whom it serves and how it encodes."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 = any free port (tests)
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    status_interval_s: float = STATUS_INTERVAL_S
    queue_depth: int = QUEUE_DEPTH
    encoder: EncoderSettings = field(default=NEAR_LOSSLESS)

    def __post_init__(self) -> None:
        # any page the user visits could drive the GPU; only the loopback is ever exposed
        if self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"the daemon binds to the loopback only ({', '.join(LOOPBACK_HOSTS)}), "
                f"not {self.host!r}"
            )
        if self.queue_depth < 1:
            raise ValueError(f"queue_depth must be at least 1, got {self.queue_depth}")
