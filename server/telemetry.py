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
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wire.media import Stats

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 10.0  # a database connect or statement slower than this fails (and is retried)
RETRY_MAX_S = 30.0  # longest wait between attempts while the database is down

# One schema for both databases: (table, column definitions). Times are Unix seconds.
SCHEMA: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "sessions",
        (
            ("id", "TEXT PRIMARY KEY"),
            ("server_id", "TEXT"),
            ("channel", "TEXT NOT NULL"),
            ("started_at", "DOUBLE PRECISION NOT NULL"),
            ("ended_at", "DOUBLE PRECISION"),
            ("user_agent", "TEXT"),
            ("abr", "TEXT"),
            ("generator_id", "TEXT"),
        ),
    ),
    (
        "deliveries",
        (
            ("session_id", "TEXT NOT NULL"),
            ("channel", "TEXT NOT NULL"),
            ("level", "INTEGER NOT NULL"),
            ("chunk", "INTEGER NOT NULL"),
            ("bytes", "BIGINT NOT NULL"),
            ("prefix_bytes", "BIGINT NOT NULL"),
            ("requested_at", "DOUBLE PRECISION NOT NULL"),
            ("sent_at", "DOUBLE PRECISION NOT NULL"),
            ("acked_at", "DOUBLE PRECISION"),
        ),
    ),
    (
        "reports",
        (
            ("session_id", "TEXT NOT NULL"),
            ("at", "DOUBLE PRECISION NOT NULL"),
            ("event", "TEXT NOT NULL"),
            ("buffer_s", "DOUBLE PRECISION NOT NULL"),
            ("stalls", "INTEGER NOT NULL"),
            ("stall_s", "DOUBLE PRECISION NOT NULL"),
            ("level", "INTEGER NOT NULL"),
            ("throughput_kbps", "DOUBLE PRECISION"),
            ("daemon_fps", "DOUBLE PRECISION"),
            ("extra", "TEXT"),
        ),
    ),
)
INDEXES = (("deliveries", "session_id"), ("reports", "session_id"))
COLUMNS = {table: tuple(name for name, _ in columns) for table, columns in SCHEMA}


def schema_statements() -> list[str]:
    """CREATE statements valid in both SQLite and PostgreSQL."""
    statements = [
        f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{n} {t}' for n, t in columns)})"
        for table, columns in SCHEMA
    ]
    statements += [f"CREATE INDEX IF NOT EXISTS {t}_{c}_idx ON {t} ({c})" for t, c in INDEXES]
    return statements


@dataclass
class Batch:
    """Rows to insert per table, then session end times to set."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    ended: list[tuple[Any, ...]] = field(default_factory=list)  # (ended_at, session id)

    def __len__(self) -> int:
        return sum(map(len, self.rows.values())) + len(self.ended)


class Backend(Protocol):
    """A database the flush task writes batches to."""

    async def open(self) -> None: ...
    async def write(self, batch: Batch) -> None: ...
    async def close(self) -> None: ...


class SqliteBackend:
    """SQLite file; the connection lives in one dedicated thread (WAL, several processes may share it)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s  # wait this long for another process's write lock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telemetry-sqlite")
        self._db: sqlite3.Connection | None = None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for statement in schema_statements():
            db.execute(statement)
        db.commit()
        self._db = db

    def _write(self, batch: Batch) -> None:
        assert self._db is not None
        with self._db:  # one transaction
            for table, rows in batch.rows.items():
                if rows:
                    columns = COLUMNS[table]
                    marks = ", ".join("?" for _ in columns)
                    self._db.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                    )
            if batch.ended:
                self._db.executemany("UPDATE sessions SET ended_at = ? WHERE id = ?", batch.ended)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def open(self) -> None:
        await self._call(self._open)

    async def write(self, batch: Batch) -> None:
        await self._call(self._write, batch)

    async def close(self) -> None:
        await self._call(self._close)
        self._thread.shutdown(wait=False)


class PostgresBackend:
    """PostgreSQL through an asyncpg pool."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None

    async def open(self) -> None:
        import asyncpg  # only deployments that give a DSN need it loaded

        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=2, command_timeout=FLUSH_TIMEOUT_S
        )
        async with self._pool.acquire() as connection:
            for statement in schema_statements():
                await connection.execute(statement)

    async def write(self, batch: Batch) -> None:
        # cancelling an asyncpg transaction rolls it back, so a timed-out batch is retried whole
        await asyncio.wait_for(self._write(batch), FLUSH_TIMEOUT_S)

    async def _write(self, batch: Batch) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            for table, rows in batch.rows.items():
                if rows:
                    columns = COLUMNS[table]
                    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
                    await connection.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                    )
            if batch.ended:
                await connection.executemany(
                    "UPDATE sessions SET ended_at = $1 WHERE id = $2", batch.ended
                )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def open_backend(target: str | None) -> Backend | None:
    """SQLite for a path, PostgreSQL for a ``postgres://``/``postgresql://`` DSN, None for off."""
    if target is None:
        return None
    if target.startswith(("postgres://", "postgresql://")):
        return PostgresBackend(target)
    return SqliteBackend(Path(target))


class Telemetry:
    """The request path's side: cheap synchronous calls that queue rows for the flush task."""

    def __init__(
        self,
        backend: Backend | None,
        *,
        flush_s: float = 0.5,
        max_rows: int = 200_000,
        close_timeout_s: float = 5.0,
    ) -> None:
        self.backend = backend
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.close_timeout_s = close_timeout_s  # shutdown waits this long for the last flush
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._wake = asyncio.Event()
        self.written = 0
        self.dropped = 0
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
