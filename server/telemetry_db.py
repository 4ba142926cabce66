"""The telemetry database: one schema in SQLite and PostgreSQL, batch writes, retention
primitives (delete by age, live size, time span) and reads for ``promptus telemetry report``.

SQLite lives in one dedicated thread per backend (WAL, so several server processes may
share the file; ``auto_vacuum=INCREMENTAL`` and a WAL size limit, so deleted rows give
their pages back); PostgreSQL goes through an asyncpg pool.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, TypeVarTuple

FLUSH_TIMEOUT_S = 10.0  # a database connect or statement slower than this fails (and is retried)
WAL_LIMIT_BYTES = 16 * 1024 * 1024  # SQLite truncates its write-ahead log to this after checkpoints

Args = TypeVarTuple("Args")
Result = TypeVar("Result")

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
INDEXES = (
    ("deliveries", "session_id"),
    ("reports", "session_id"),
    ("sessions", "started_at"),  # retention deletes by time
    ("deliveries", "requested_at"),
    ("reports", "at"),
)
# The time column of each table: retention deletes rows older than a cutoff by it.
TIME_COLUMNS = {"sessions": "started_at", "deliveries": "requested_at", "reports": "at"}
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
    """A database the flush task writes batches to and the retention task prunes."""

    async def open(self) -> None: ...
    async def write(self, batch: Batch) -> None: ...
    async def delete_before(self, cutoff: float) -> int: ...
    async def size_bytes(self) -> int: ...
    async def time_span(self) -> tuple[float, float] | None:
        """(oldest, newest) time of the reports and deliveries (of the sessions when only they
        are left); None when empty."""
        ...

    async def fetch(self, table: str, since: float) -> list[dict[str, Any]]: ...
    async def close(self) -> None: ...


# The time a row is "as old as", for retention: a session counts from its end (or, still open,
# its start), so the session row of a long viewing outlives the reports of its first hours.
AGE_OF = {**TIME_COLUMNS, "sessions": "COALESCE(ended_at, started_at)"}


def delete_statements(mark: Callable[[int], str]) -> list[str]:
    """DELETE of every row older than the cutoff (parameter 1), per table; a session row goes
    only once none of its reports and deliveries is left (the report needs it for them)."""
    return [
        f"DELETE FROM reports WHERE at < {mark(1)}",
        f"DELETE FROM deliveries WHERE requested_at < {mark(1)}",
        f"DELETE FROM sessions WHERE {AGE_OF['sessions']} < {mark(1)}"
        " AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.session_id = sessions.id)"
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.session_id = sessions.id)",
    ]


# The span the size cap cuts into: the rows that carry the volume (a long session's row would
# pin the span's start while its old reports are long gone); the sessions when only they are left.
ROWS_SPAN_QUERY = " UNION ALL ".join(
    f"SELECT MIN({age}) AS low, MAX({age}) AS high FROM {table}"
    for table, age in AGE_OF.items()
    if table != "sessions"
)
SESSIONS_SPAN_QUERY = f"SELECT MIN({AGE_OF['sessions']}), MAX({AGE_OF['sessions']}) FROM sessions"


class SqliteBackend:
    """SQLite file; the connection lives in one dedicated thread (WAL, several processes may share it)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s  # wait this long for another process's write lock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telemetry-sqlite")
        self._db: sqlite3.Connection | None = None

    async def _call(self, fn: Callable[[*Args], Result], *args: *Args) -> Result:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect in a new file (before tables)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        for statement in schema_statements():
            db.execute(statement)
        db.commit()
        self._db = db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._open()
        assert self._db is not None
        return self._db

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

    def _delete_before(self, cutoff: float) -> int:
        db = self._connection()
        with db:
            deleted = sum(db.execute(sql, (cutoff,)).rowcount for sql in delete_statements(_qmark))
        if deleted:
            db.execute("PRAGMA incremental_vacuum")  # free pages back to the file system
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def _size_bytes(self) -> int:
        """Bytes of the pages in use (the file minus its free pages)."""
        db = self._connection()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * db.execute("PRAGMA page_size").fetchone()[0])

    def _time_span(self) -> tuple[float, float] | None:
        db = self._connection()
        return _span(db.execute(ROWS_SPAN_QUERY).fetchall()) or _span(
            db.execute(SESSIONS_SPAN_QUERY).fetchall()
        )

    def _fetch(self, table: str, since: float) -> list[dict[str, Any]]:
        db = self._connection()
        cursor = db.execute(
            f"SELECT * FROM {table} WHERE {TIME_COLUMNS[table]} >= ? ORDER BY {TIME_COLUMNS[table]}",
            (since,),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def open(self) -> None:
        await self._call(self._open)

    async def write(self, batch: Batch) -> None:
        await self._call(self._write, batch)

    async def delete_before(self, cutoff: float) -> int:
        return int(await self._call(self._delete_before, cutoff))

    async def size_bytes(self) -> int:
        return int(await self._call(self._size_bytes))

    async def time_span(self) -> tuple[float, float] | None:
        return await self._call(self._time_span)

    async def fetch(self, table: str, since: float) -> list[dict[str, Any]]:
        return await self._call(self._fetch, table, since)

    async def close(self) -> None:
        await self._call(self._close)
        self._thread.shutdown(wait=False)


class PostgresBackend:
    """PostgreSQL through an asyncpg pool."""

    def __init__(self, dsn: str, *, scan_above_bytes: int = 0) -> None:
        self.dsn = dsn
        self.scan_above_bytes = scan_above_bytes  # size_bytes scans rows only above this
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

    async def delete_before(self, cutoff: float) -> int:
        deleted = 0
        async with self._pool.acquire() as connection:
            async with connection.transaction():
                for sql in delete_statements(_dollar):
                    status = await connection.execute(sql, cutoff)  # e.g. "DELETE 42"
                    deleted += int(status.split()[-1])
            if deleted:
                for table in COLUMNS:  # makes the space reusable (files are not shrunk)
                    await connection.execute(f"VACUUM {table}")
        return deleted

    async def size_bytes(self) -> int:
        """Bytes of live rows. The relations' files keep the space of deleted rows for reuse,
        so their size is only the cheap first look: under the cap nothing is scanned."""
        async with self._pool.acquire() as connection:
            files = await connection.fetchval(
                "SELECT " + " + ".join(f"pg_total_relation_size('{table}')" for table in COLUMNS)
            )
            if files is None or files <= self.scan_above_bytes:
                return int(files or 0)
            total = 0
            for table in COLUMNS:
                total += int(
                    await connection.fetchval(
                        f"SELECT COALESCE(SUM(pg_column_size(t.*)), 0) FROM {table} t"
                    )
                )
            return total

    async def time_span(self) -> tuple[float, float] | None:
        async with self._pool.acquire() as connection:
            for query in (ROWS_SPAN_QUERY, SESSIONS_SPAN_QUERY):
                span = _span([(row[0], row[1]) for row in await connection.fetch(query)])
                if span is not None:
                    return span
        return None

    async def fetch(self, table: str, since: float) -> list[dict[str, Any]]:
        column = TIME_COLUMNS[table]
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT * FROM {table} WHERE {column} >= $1 ORDER BY {column}", since
            )
        return [dict(row) for row in rows]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def open_backend(target: str | None, *, max_bytes: int = 0) -> Backend | None:
    """SQLite for a path, PostgreSQL for a ``postgres://``/``postgresql://`` DSN, None for off.
    ``max_bytes`` is the size cap (PostgreSQL measures its live rows only above it)."""
    if target is None:
        return None
    if target.startswith(("postgres://", "postgresql://")):
        return PostgresBackend(target, scan_above_bytes=max_bytes)
    return SqliteBackend(Path(target))


def _qmark(_: int) -> str:
    return "?"


def _dollar(position: int) -> str:
    return f"${position}"


def _span(rows: list[tuple[Any, Any]]) -> tuple[float, float] | None:
    lows = [low for low, _ in rows if low is not None]
    highs = [high for _, high in rows if high is not None]
    return (float(min(lows)), float(max(highs))) if lows else None
