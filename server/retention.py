"""The telemetry retention policy, the same for SQLite and PostgreSQL: rows older than the
window are deleted, and while the data are over the size cap the oldest rows go too.

Run in the background by the server (every ``Retention.every_s``) and by ``promptus telemetry
prune``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.telemetry_db import Backend

TARGET_SHARE = 0.9  # over the cap, prune down to this share of it (headroom until the next run)
MAX_STEPS = 8  # deletions per run while over the cap (rows are rarely spread evenly in time)


@dataclass(frozen=True)
class Retention:
    """How long rows are kept and how large the data may grow."""

    max_age_s: float
    max_bytes: int
    every_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.max_age_s > 0 and self.max_bytes > 0 and self.every_s > 0):
            raise ValueError("retention window, size cap and interval must be positive")


@dataclass(frozen=True)
class Pruned:
    """What one run did."""

    deleted: int  # rows
    size_bytes: int  # the data's size afterwards


async def enforce(backend: Backend, retention: Retention, now: float | None = None) -> Pruned:
    """Delete rows past the window, then the oldest rows while the data exceed the cap."""
    now = time.time() if now is None else now
    deleted = await backend.delete_before(now - retention.max_age_s)
    size = await backend.size_bytes()
    steps = 0
    while size > retention.max_bytes and steps < MAX_STEPS:
        span = await backend.time_span()
        if span is None:
            break
        oldest, newest = span
        # rows lie roughly evenly in time: cut the share of the span that is over the target
        share = (size - TARGET_SHARE * retention.max_bytes) / size
        cutoff = oldest + (newest - oldest) * share
        if cutoff <= oldest:
            cutoff = math.nextafter(oldest, math.inf)  # at least the oldest rows
        deleted += await backend.delete_before(cutoff)
        size = await backend.size_bytes()
        steps += 1
    return Pruned(deleted=deleted, size_bytes=size)
