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
class Budget:
    """What pages may make the daemon allocate; every bound is checked before anything is.

    The defaults are what real ladders need with headroom: chunks of 2 s (60 frames at 30 fps)
    with keyframes every 5-10 frames at SD-Turbo's native 512x512.
    """

    max_chunk_frames: int = 240  # frames of one chunk (8 s at 30 fps)
    max_group_frames: int = 60  # frames between consecutive keyframes (one generation group)
    max_chunk_pixels: int = 240 * 512 * 512  # chunk frames x width x height (94 MB as yuv420p)
    max_sessions: int = 4  # streams generated at once; another page's `open` gets `busy`

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")

    def stream_problem(self, width: int, height: int, chunk_frames: int) -> str | None:
        """Why a stream of this shape is over the budget, or None."""
        if chunk_frames > self.max_chunk_frames:
            return (
                f"chunks of {chunk_frames} frames are over this daemon's limit of "
                f"{self.max_chunk_frames} (promptus daemon --max-chunk-frames)"
            )
        pixels = chunk_frames * width * height
        if pixels > self.max_chunk_pixels:
            return (
                f"chunks of {chunk_frames} frames of {width}x{height} are {pixels} pixels, over "
                f"this daemon's limit of {self.max_chunk_pixels} (promptus daemon "
                "--max-chunk-megapixels)"
            )
        return None


@dataclass(frozen=True)
class DaemonSettings:
    """Where the daemon listens, whom it serves and how it encodes."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 = any free port (tests)
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    status_interval_s: float = STATUS_INTERVAL_S
    queue_depth: int = QUEUE_DEPTH
    encoder: EncoderSettings = field(default=NEAR_LOSSLESS)
    budget: Budget = field(default_factory=Budget)

    def __post_init__(self) -> None:
        # any page the user visits could drive the GPU; only the loopback is ever exposed
        if self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"the daemon binds to the loopback only ({', '.join(LOOPBACK_HOSTS)}), "
                f"not {self.host!r}"
            )
        if self.queue_depth < 1:
            raise ValueError(f"queue_depth must be at least 1, got {self.queue_depth}")
