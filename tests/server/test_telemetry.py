"""Telemetry rows land in a real SQLite file and a real PostgreSQL; a dead database never stalls streaming."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from server.telemetry import Telemetry
from server.telemetry_db import COLUMNS, PostgresBackend, SqliteBackend
from tests.server.conftest import STREAM, Connect, StartServer
from wire.media import Stats


async def stream_a_session(connect: Connect, server: Any) -> None:
    """One viewer: hello, three chunks (two acked), two reports, then leave."""
    viewer = await connect(server)
    await viewer.hello("sky", abr="bba", user_agent="pytest-agent")
    await viewer.get(0, 0)
    await viewer.get(1, 1, prefix=True)
    await viewer.get(2, 1, ack=False)
    await viewer.stats(
        Stats(
            buffer_s=3.5,
            stalls=0,
            stall_s=0.0,
            level=1,
            throughput_kbps=900.0,
            daemon_fps=61.0,
            event="startup",
            extra={"startup_s": 0.4},
        )
    )
    await viewer.stats(Stats(buffer_s=4.0, stalls=1, stall_s=0.25, level=1, behind_live_s=6.5))
    await asyncio.sleep(0.1)  # let the server read the reports before we leave
    await viewer.close()


def check_rows(sessions: list[dict], deliveries: list[dict], reports: list[dict]) -> None:
    assert len(sessions) == 1
    session = sessions[0]
    assert (session["channel"], session["user_agent"], session["abr"]) == (
        "sky",
        "pytest-agent",
        "bba",
    )
    assert session["generator_id"] == STREAM.generator_id
    assert session["ended_at"] is not None and session["ended_at"] >= session["started_at"]
    by_chunk = {row["chunk"]: row for row in deliveries}
    assert sorted(by_chunk) == [0, 1, 2]
    assert all(row["session_id"] == session["id"] for row in deliveries)
    assert by_chunk[0]["prefix_bytes"] == 0 and by_chunk[1]["prefix_bytes"] > 0
    assert by_chunk[1]["level"] == 1 and by_chunk[1]["bytes"] > 0
    assert by_chunk[0]["acked_at"] >= by_chunk[0]["sent_at"] >= by_chunk[0]["requested_at"]
    assert by_chunk[2]["acked_at"] is None
    assert [r["event"] for r in sorted(reports, key=lambda r: r["at"])] == ["startup", "timer"]
    startup = min(reports, key=lambda r: r["at"])
    assert startup["daemon_fps"] == 61.0 and startup["throughput_kbps"] == 900.0
    assert startup["extra"] == '{"startup_s":0.4}'
    later = max(reports, key=lambda r: r["at"])
    assert later["extra"] == '{"behind_live_s":6.5}'  # a live viewer's distance to the edge


async def wait_until_written(server: Any, rows: int) -> None:
    from server.keys import telemetry_key

    telemetry = server.app[telemetry_key]
    for _ in range(100):
        if telemetry.written >= rows and telemetry.queued == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"telemetry wrote {telemetry.written} rows, {telemetry.queued} queued")


async def test_rows_land_in_sqlite(
    start_server: StartServer, connect: Connect, tmp_path: Path
) -> None:
    database = tmp_path / "t.sqlite3"
    server = await start_server(telemetry=str(database))
    await stream_a_session(connect, server)
    await wait_until_written(server, rows=1 + 1 + 3 + 2)  # session, its end, deliveries, reports
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        tables = {t: [dict(r) for r in db.execute(f"SELECT * FROM {t}")] for t in COLUMNS}
    check_rows(tables["sessions"], tables["deliveries"], tables["reports"])


async def test_rows_land_in_postgresql(
    start_server: StartServer, connect: Connect, pg_dsn: str
) -> None:
    import asyncpg

    server = await start_server(telemetry=pg_dsn)
    await stream_a_session(connect, server)
    await wait_until_written(server, rows=7)
    connection = await asyncpg.connect(pg_dsn)
    try:
        tables = {
            t: [dict(r) for r in await connection.fetch(f"SELECT * FROM {t}")] for t in COLUMNS
        }
    finally:
        await connection.close()
    check_rows(tables["sessions"], tables["deliveries"], tables["reports"])


async def test_postgres_backend_round_trip(pg_dsn: str) -> None:
    telemetry = Telemetry(PostgresBackend(pg_dsn))
    telemetry.session_started(
        "s1", channel="sky", user_agent=None, abr=None, generator_id="g", server_id="0"
    )
    telemetry.session_ended("s1")
    await telemetry.flush()
    await telemetry.close()
    assert telemetry.written == 2


async def stalled_database() -> tuple[asyncio.Server, int]:
    """A TCP server that accepts connections and never answers: a hung database."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("kind", ["refused", "hung"])
async def test_dead_database_never_stalls_streaming(
    start_server: StartServer, connect: Connect, kind: str
) -> None:
    database, port = await stalled_database()
    if kind == "refused":
        database.close()
        await database.wait_closed()
    try:
        server = await start_server(
            telemetry=f"postgresql://x:y@127.0.0.1:{port}/none", telemetry_close_timeout_s=0.5
        )
        viewer = await connect(server)
        await viewer.hello("sky")
        started = time.perf_counter()
        for index in range(STREAM.chunk_count):
            await viewer.get(index, 0)
            await viewer.stats(Stats(buffer_s=1, stalls=0, stall_s=0, level=0))
        assert time.perf_counter() - started < 2.0  # no request waited for the database
        from server.keys import telemetry_key

        telemetry = server.app[telemetry_key]
        assert telemetry.written == 0 and telemetry.queued > 0
        await viewer.close()
        started = time.perf_counter()
        await server.close()  # shutdown gives up on the database after its close timeout
        assert time.perf_counter() - started < 3.0
    finally:
        database.close()


async def test_queue_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    telemetry = Telemetry(SqliteBackend(tmp_path / "missing-dir" / "t.sqlite3"), max_rows=5)
    for i in range(8):
        telemetry.session_ended(f"s{i}")
    assert telemetry.queued == 5 and telemetry.dropped == 3
    with pytest.raises(sqlite3.OperationalError):
        await telemetry.flush()  # the folder does not exist: the database cannot open
    assert telemetry.queued == 5  # nothing lost by the failed attempt
    (tmp_path / "missing-dir").mkdir()
    await telemetry.flush()
    assert telemetry.written == 5 and telemetry.queued == 0
    await telemetry.close()


async def test_failed_batch_is_retried_in_order(tmp_path: Path) -> None:
    database = tmp_path / "t.sqlite3"
    telemetry = Telemetry(SqliteBackend(database, busy_timeout_s=0.2))
    await telemetry.flush()  # creates the schema
    with sqlite3.connect(database) as db:  # another writer holds the lock: our write fails
        db.execute("BEGIN EXCLUSIVE")
        telemetry.session_started(
            "a", channel="c", user_agent=None, abr=None, generator_id="g", server_id="0"
        )
        telemetry.session_ended("a")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await telemetry.flush()
        assert telemetry.queued == 2
        db.rollback()
    await telemetry.flush()
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT id, ended_at FROM sessions").fetchall()
    assert len(rows) == 1 and rows[0][0] == "a" and rows[0][1] is not None
    await telemetry.close()
