"""Telemetry: sessions, chunk deliveries and client reports, written in batches off the request path.

The server calls the ``Telemetry`` methods synchronously; they only append to an
in-memory queue. A background task (`run`) hands batches to a backend: SQLite by default,
PostgreSQL (asyncpg) when a DSN is given, with the same tables. A slow or unreachable
database only delays the flush task: rows wait in a bounded queue (the oldest are
dropped and counted when it overflows) and streaming never waits for the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

from server.retention import Retention, enforce
from server.telemetry_db import FLUSH_TIMEOUT_S, Backend, Batch
from wire.media import Stats

log = logging.getLogger(__name__)

RETRY_MAX_S = 30.0  # longest wait between attempts while the database is down


class Telemetry:
    """The request path's side: cheap synchronous calls that queue rows for the flush task."""

    def __init__(
        self,
        backend: Backend | None,
        *,
        flush_s: float = 0.5,
        max_rows: int = 200_000,
        close_timeout_s: float = 5.0,
        retention: Retention | None = None,
    ) -> None:
        self.backend = backend
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.close_timeout_s = close_timeout_s  # shutdown waits this long for the last flush
        self.retention = retention  # enforced by the flush task (None: keep everything)
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._wake = asyncio.Event()
        self._next_prune = 0.0  # time.monotonic() of the next retention run
        self.written = 0
        self.dropped = 0
        self.throttled = 0  # rows a connection sent over its rows per minute (counted by viewers)
        self.pruned = 0  # rows deleted by retention and the size cap
        self.size_bytes = 0  # the data's size after the last retention run
        self.failures = 0
        self.connected = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _put(self, table: str, row: tuple[Any, ...]) -> None:
        if self.backend is None:
            return
        if len(self._queue) >= self.max_rows:
            self._queue.popleft()  # the database is far behind: keep the newest rows
            self.dropped += 1
        self._queue.append((table, row))
        if len(self._queue) >= 1000:
            self._wake.set()

    def session_started(
        self,
        session_id: str,
        *,
        channel: str,
        user_agent: str | None,
        abr: str | None,
        generator_id: str,
        server_id: str,
        at: float | None = None,
    ) -> None:
        self._put(
            "sessions",
            (
                session_id,
                server_id,
                channel,
                at or time.time(),
                None,
                user_agent,
                abr,
                generator_id,
            ),
        )

    def session_ended(self, session_id: str, at: float | None = None) -> None:
        self._put("ended", (at or time.time(), session_id))

    def delivery(
        self,
        session_id: str,
        *,
        channel: str,
        level: int,
        chunk: int,
        size: int,
        prefix_bytes: int,
        requested_at: float,
        sent_at: float,
        acked_at: float | None,
    ) -> None:
        self._put(
            "deliveries",
            (
                session_id,
                channel,
                level,
                chunk,
                size,
                prefix_bytes,
                requested_at,
                sent_at,
                acked_at,
            ),
        )

    def report(self, session_id: str, stats: Stats, at: float | None = None) -> None:
        # a live viewer's distance to the live edge travels with the free-form fields
        fields = stats.extra
        if stats.behind_live_s is not None:
            fields = {**fields, "behind_live_s": stats.behind_live_s}
        extra = json.dumps(fields, separators=(",", ":")) if fields else None
        self._put(
            "reports",
            (
                session_id,
                at or time.time(),
                stats.event,
                stats.buffer_s,
                stats.stalls,
                stats.stall_s,
                stats.level,
                stats.throughput_kbps,
                stats.daemon_fps,
                extra,
            ),
        )

    def _take_batch(self, limit: int = 5000) -> Batch:
        batch = Batch()
        while self._queue and len(batch) < limit:
            table, row = self._queue.popleft()
            if table == "ended":
                batch.ended.append(row)
            else:
                batch.rows[table].append(row)
        return batch

    def _requeue(self, batch: Batch) -> None:
        """Put a failed batch back in front, in order (dropping overflow like `_put`)."""
        items = [(t, r) for t, rows in batch.rows.items() for r in rows] + [
            ("ended", e) for e in batch.ended
        ]
        for item in reversed(items):
            if len(self._queue) >= self.max_rows:
                self.dropped += 1
                continue
            self._queue.appendleft(item)

    async def _ensure_open(self) -> None:
        if not self.connected and self.backend is not None:
            await asyncio.wait_for(self.backend.open(), FLUSH_TIMEOUT_S)
            self.connected = True

    async def flush(self) -> None:
        """Write everything queued so far; raises if the database fails (rows are kept)."""
        backend = self.backend
        if backend is None:
            return
        await self._ensure_open()
        while self._queue:
            batch = self._take_batch()
            try:
                # no wait_for here: a cancelled SQLite write would still commit in its thread
                # and then be written twice; each backend bounds its own statements instead
                await backend.write(batch)
            except BaseException:
                self._requeue(batch)
                raise
            self.written += len(batch)

    async def run(self) -> None:
        """The flush task: every ``flush_s`` (or at 1000 queued rows), with backoff while failing."""
        if self.backend is None:
            return
        delay = self.flush_s
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
                await self.prune_when_due()
                delay = self.flush_s
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any database failure: log, back off, retry
                self.failures += 1
                delay = min(RETRY_MAX_S, max(delay * 2, 1.0))
                log.warning(
                    "telemetry write failed (%s rows waiting, retry in %.0f s): %s",
                    len(self._queue),
                    delay,
                    error,
                )

    async def prune_when_due(self) -> None:
        """Enforce the retention window and the size cap (at most every ``retention.every_s``)."""
        if self.retention is None or self.backend is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self.retention.every_s
        result = await enforce(self.backend, self.retention)
        self.pruned += result.deleted
        self.size_bytes = result.size_bytes
        if result.deleted:
            log.info(
                "telemetry: %d old rows deleted, %.1f MB left",
                result.deleted,
                result.size_bytes / 1e6,
            )

    async def close(self) -> None:
        """Last flush (bounded by self.close_timeout_s), then close the backend."""
        if self.backend is None:
            return
        try:
            await asyncio.wait_for(self.flush(), self.close_timeout_s)
        except Exception as error:  # noqa: BLE001 - shutdown goes on without the database
            log.warning("telemetry: %d rows not written at shutdown: %s", len(self._queue), error)
        try:
            await asyncio.wait_for(self.backend.close(), self.close_timeout_s)
        except Exception as error:  # noqa: BLE001
            log.warning("telemetry: closing the database failed: %s", error)
