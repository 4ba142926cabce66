"""Daemon settings and their defaults (light: imported by the CLI before anything heavy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from client_daemon.muxer import NEAR_LOSSLESS, EncoderSettings

if TYPE_CHECKING:
    from client_daemon.footprint import Footprint

DEFAULT_PORT = 9090
# the media server's default origin (promptus serve listens on 8080)
DEFAULT_ALLOWED_ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
STATUS_INTERVAL_S = 1.0  # seconds between `status` messages
QUEUE_DEPTH = 2  # chunks accepted and waiting for the generation thread, per page
IDLE_TIMEOUT_S = 60.0  # a page that sends nothing this long, none of its chunks queued, is closed
# Share of the device's free memory (measured at start) one model call may allocate unless
# --max-call-mb says otherwise: a CPU's memory is shared with the browser and the system.
CALL_MEMORY_SHARE = {"cuda": 0.5, "cpu": 0.25}


@dataclass(frozen=True)
class Budget:
    """What pages may make the daemon allocate, and how long one turn on the generator may be;
    every bound is checked before anything is allocated.

    The defaults are what real ladders need with headroom: chunks of 2 s (60 frames at 30 fps)
    with keyframes every 5-10 frames at SD-Turbo's native 512x512.
    """

    max_chunk_frames: int = 240  # frames of one chunk (8 s at 30 fps)
    max_group_frames: int = 60  # frames between consecutive keyframes (one generation group)
    max_chunk_pixels: int = 240 * 512 * 512  # chunk frames x width x height (94 MB as yuv420p)
    max_sessions: int = 4  # streams generated at once; another page's `open` gets `busy`
    # bytes one model call may allocate (frames x pixels x the generator's measured bytes per
    # pixel); None: CALL_MEMORY_SHARE of the device's free memory at start
    max_call_bytes: int | None = None
    slice_ms: float = 250.0  # a model call of a page's turn takes about this long (>= 1 frame)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is not None and value < 1:
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

    def call_limit(self, footprint: Footprint) -> int:
        """Bytes one model call may allocate on the footprint's device."""
        if self.max_call_bytes is not None:
            return self.max_call_bytes
        share = CALL_MEMORY_SHARE["cuda" if footprint.device.startswith("cuda") else "cpu"]
        return int(share * footprint.available_bytes)

    def call_frames(self, footprint: Footprint, width: int, height: int) -> int:
        """Frames of ``width x height`` one model call may hold within ``call_limit`` (at
        least 1); ValueError naming the option when one frame is already over it."""
        limit = self.call_limit(footprint)
        one = footprint.call_bytes(1, width, height)
        if one > limit:
            raise ValueError(
                f"one {width}x{height} frame needs about {one / 2**20:.0f} MiB in a model call "
                f"({footprint.describe()}, measured at start), over this daemon's "
                f"{limit / 2**20:.0f} MiB per call (promptus daemon --max-call-mb)"
            )
        return max(1, int(limit // one)) if one > 0 else 2**31


@dataclass(frozen=True)
class DaemonSettings:
    """Where the daemon listens, whom it serves and how it encodes."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 = any free port (tests)
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    status_interval_s: float = STATUS_INTERVAL_S
    queue_depth: int = QUEUE_DEPTH
    idle_timeout_s: float = IDLE_TIMEOUT_S
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
        if self.idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be positive, got {self.idle_timeout_s}")
