"""Configuration of one media server process (built by the CLI, or by tests directly)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prompts.manifest import MAX_MANIFEST_BYTES

REPO_WEB_DIR = Path(__file__).resolve().parents[1] / "web"  # the browser player's static files
TELEMETRY_FILE_NAME = "telemetry.sqlite3"
DAY_S = 24 * 3600  # telemetry retention is set in days on the command line


@dataclass(frozen=True)
class ServerSettings:
    """Everything `create_app` needs; defaults are the documented production values."""

    media_dir: Path
    web_dir: Path = REPO_WEB_DIR
    # SQLite file path, a postgresql:// DSN, or None for no telemetry
    telemetry: str | None = None
    max_viewers: int = 10_000  # concurrent WebSockets per process
    max_per_address: int = 8  # concurrent WebSockets per client address (0: no limit)
    # sockets waiting for a request's headers (half-sent requests, idle keep-alive): closed
    # after this long, at most so many per client address (0: no limit) and in all
    header_timeout_s: float = 10.0
    max_pending_per_address: int = 16
    max_pending: int = 1024
    log_interval_s: float = 60.0  # at most one line per address a minute about its bad requests
    # bytes of manifests the hellos of one address may make the server send (a hello is ~50
    # bytes, a manifest up to MAX_MANIFEST_BYTES): sustained per second, and at once
    manifest_bytes_per_s: float = 1024 * 1024
    manifest_burst_bytes: float = 2 * MAX_MANIFEST_BYTES
    rate_per_s: float = 20.0  # messages per second a connection may sustain
    rate_burst: int = 40  # messages a connection may send at once
    idle_timeout_s: float = 60.0  # close a connection silent this long (Puffer: 60 s)
    # at most this long between looks at the idle timer (None: wait out the whole remaining
    # timeout; tests that move `clock` by hand set a short step)
    idle_check_s: float | None = None
    send_timeout_s: float = 30.0  # close a connection that does not take our data this long
    cache_bytes: int = 256 * 1024 * 1024  # bound of the encoded-chunk cache
    catalog_poll_s: float = 0.5  # how often the catalog looks for new channels and chunks
    live_ahead_chunks: int = (
        3  # live: chunks past the edge answered not_available, not beyond_live_edge
    )
    telemetry_flush_s: float = 0.5  # telemetry batch interval
    telemetry_queue_rows: int = 200_000  # rows buffered while the database is slow or down
    telemetry_close_timeout_s: float = 5.0  # shutdown waits this long for the last telemetry flush
    telemetry_rows_per_min: int = (
        240  # rows one connection may add a minute (sessions, reports, deliveries)
    )
    telemetry_retention_s: float = 30 * DAY_S  # rows older than this are deleted
    telemetry_max_bytes: int = 1_000_000_000  # the oldest rows go when the data exceed it
    telemetry_prune_s: float = 60.0  # how often retention and the size cap are enforced
    server_id: str = "0"  # recorded with each session (several processes behind one port)
    # monotonic seconds for rate limits and idle timers (tests pass a clock they move by hand)
    clock: Callable[[], float] = time.monotonic
