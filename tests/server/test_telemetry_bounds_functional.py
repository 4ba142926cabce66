"""Issue 13, row 3: telemetry has bounds and a retention policy (a real ``promptus serve`` with
SQLite; the policy itself on SQLite and PostgreSQL), and ``promptus telemetry report|prune``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from prompts.testing import write_ladder as write_quality_ladder
from promptus.cli import main
from server.client import ViewerClient
from server.retention import Retention, enforce
from server.telemetry import Telemetry
from server.telemetry_db import open_backend
from tests.server.conftest import LEVELS, STREAM, write_ladder
from tests.server.serve_process import running_server
from wire.media import MAX_EXTRA_STATS_BYTES, Stats

ROWS_PER_MIN = 60
RETENTION_S = 6.0
MAX_MB = 0.25
VIEWERS = 20
REPORTS_A_DAY = 60  # enough rows that the data dwarf the databases' empty size


def full_size_stats() -> str:
    """The largest `stats` a viewer may send: 16 long extra fields and absurd integers."""
    fields: dict[str, Any] = {f"k{i:02d}_" + "x" * 60: "y" * 128 for i in range(16)}
    fields |= {"big": 10**4000, "negative": -(10**300)}
    stats = {"type": "stats", "buffer_s": 1.0, "stalls": 0, "stall_s": 0.0, "level": 0}
    text = json.dumps({**stats, **fields})
    assert len(text) < 16 * 1024  # under the control limit: the server reads all of it
    return text


async def flood_stats(port: int, seconds: float) -> None:
    """VIEWERS connections send full-size stats at 15 a second (under the 20/s rate limit)."""
    text = full_size_stats()
    async with aiohttp.ClientSession() as http:
        viewers = [
            await ViewerClient.connect(http, f"ws://127.0.0.1:{port}/ws") for _ in range(VIEWERS)
        ]
        for viewer in viewers:
            await viewer.hello("sky", abr="flood")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.gather(*(viewer.ws.send_str(text) for viewer in viewers))
            await asyncio.sleep(1 / 15)
        for viewer in viewers:
            await viewer.close()


def used_bytes(database: Path) -> int:
    with sqlite3.connect(database) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * db.execute("PRAGMA page_size").fetchone()[0]


async def metric(port: int, name: str) -> float:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


async def test_row3_rows_are_bounded_and_old_ones_deleted(tmp_path: Path) -> None:
    media, database = tmp_path / "media", tmp_path / "telemetry.sqlite3"
    write_ladder(media / "sky")
    args = ["--telemetry", str(database), "--telemetry-rows-per-min", str(ROWS_PER_MIN)]
    args += ["--telemetry-days", str(RETENTION_S / 86400), "--telemetry-max-mb", str(MAX_MB)]
    args += ["--telemetry-prune-every", "0.5", "--max-per-address", "0"]
    with running_server(media, *args) as (_, port):
        started = time.monotonic()
        await flood_stats(port, seconds=4.0)
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)  # the last batch is flushed, the next prune has run
        with sqlite3.connect(database) as db:
            per_session = db.execute("SELECT COUNT(*) FROM reports GROUP BY session_id").fetchall()
            longest_extra = db.execute("SELECT MAX(LENGTH(extra)) FROM reports").fetchone()[0]
        # each connection: its burst (a quarter minute) plus a row a second, of 60 a second sent
        bound = ROWS_PER_MIN / 4 + ROWS_PER_MIN / 60 * elapsed + 1
        assert per_session and max(n for (n,) in per_session) <= bound
        assert longest_extra <= MAX_EXTRA_STATS_BYTES
        assert await metric(port, "promptus_telemetry_throttled_rows") > 0
        assert used_bytes(database) <= MAX_MB * 1e6 * 1.2  # the cap, plus rows since the prune
        await asyncio.sleep(RETENTION_S + 1.5)  # past the window: everything goes
        with sqlite3.connect(database) as db:
            counts = [
                db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("sessions", "reports")
            ]
        assert counts == [0, 0]
        assert await metric(port, "promptus_telemetry_pruned_rows") > 0


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "t.sqlite3")
    return request.getfixturevalue("pg_dsn")


async def test_row3_retention_and_the_size_cap_in_both_databases(database: str) -> None:
    """A hundred days of rows: the window keeps thirty, the cap keeps the newest."""
    now = time.time()
    telemetry = Telemetry(open_backend(database))
    for day in range(100):
        at = now - (99 - day) * 86400
        session = f"s{day:03d}"
        telemetry.session_started(
            session,
            channel="sky",
            user_agent="x" * 500,
            abr="bba",
            generator_id="g",
            server_id="0",
            at=at,
        )
        for second in range(REPORTS_A_DAY):
            telemetry.report(
                session, Stats(buffer_s=1, stalls=0, stall_s=0, level=0), at=at + second
            )
        telemetry.session_ended(session, at=at + REPORTS_A_DAY)
    # a viewing that lasts all hundred days: its session row is the oldest row of all
    telemetry.session_started(
        "long", channel="sky", user_agent=None, abr="bba", generator_id="g", server_id="0",
        at=now - 99 * 86400 - 60,
    )  # fmt: skip
    for day in range(100):
        for second in range(REPORTS_A_DAY):
            at = now - (99 - day) * 86400 + 200 + second
            telemetry.report("long", Stats(buffer_s=1, stalls=0, stall_s=0, level=0), at=at)
    await telemetry.flush()
    backend = telemetry.backend
    assert backend is not None
    kept = await enforce(backend, Retention(max_age_s=30 * 86400 - 1800, max_bytes=10**9), now=now)
    assert kept.deleted == 70 * (1 + 2 * REPORTS_A_DAY)
    sessions = await backend.fetch("sessions", 0.0)
    # the long viewing keeps its row while its recent reports are kept
    assert [s["id"] for s in sessions] == ["long"] + [f"s{d:03d}" for d in range(70, 100)]
    small = (await backend.size_bytes()) // 3
    capped = await enforce(backend, Retention(max_age_s=10**9, max_bytes=small), now=now)
    assert capped.size_bytes <= small and capped.deleted > 0
    left = [s["id"] for s in await backend.fetch("sessions", 0.0)]
    days = [s for s in left if s != "long"]
    assert days and days[-1] == "s099" and days == sorted(days)  # the oldest went first
    await telemetry.close()


async def test_telemetry_report_and_prune_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Puffer's statistics per ABR from sessions whose stalls and qualities are known."""
    media, database = tmp_path / "media", tmp_path / "t.sqlite3"
    write_quality_ladder(
        media / "sky",
        STREAM.generator_id,
        levels=LEVELS,
        frames=STREAM.frames,
        fps=STREAM.fps,
        size=STREAM.width,
        chunk_frames=STREAM.chunk_frames,
        qualities=[{"psnr": 20.0}, {"psnr": 24.0}],
    )
    telemetry = Telemetry(open_backend(str(database)))
    t0 = time.time() - 600
    # (abr, startup s, watch s, stall s, played (level, chunk) in order)
    plays = [
        ("bba", 1.0, 10.0, 1.0, [(0, 0), (1, 1), (1, 2)]),
        ("bba", 0.5, 10.0, 0.0, [(1, 0), (1, 1)]),
        ("mpc", 2.0, 8.0, 2.0, [(0, 0), (0, 1)]),
    ]
    for number, (abr, startup, watch, stall, chunks) in enumerate(plays):
        session, start = f"s{number}", t0 + 100 * number
        telemetry.session_started(
            session,
            channel="sky",
            user_agent=None,
            abr=abr,
            generator_id="g",
            server_id="0",
            at=start,
        )
        begin = start + startup
        telemetry.report(
            session, Stats(buffer_s=2, stalls=0, stall_s=0, level=0, event="startup"), at=begin
        )
        if stall:
            telemetry.report(
                session,
                Stats(buffer_s=0, stalls=1, stall_s=0, level=0, event="rebuffer"),
                at=begin + 3,
            )
            telemetry.report(
                session,
                Stats(buffer_s=1, stalls=1, stall_s=stall, level=0, event="play"),
                at=begin + 3 + stall,
            )
        telemetry.report(
            session,
            Stats(buffer_s=2, stalls=int(stall > 0), stall_s=stall, level=0),
            at=begin + watch,
        )
        for position, (level, chunk) in enumerate(chunks):
            sent = start + position
            telemetry.delivery(
                session,
                channel="sky",
                level=level,
                chunk=chunk,
                size=1000,
                prefix_bytes=0,
                requested_at=sent,
                sent_at=sent + 0.1,
                acked_at=sent + 0.5,
            )
        telemetry.session_ended(session, at=begin + watch + 1)
    await telemetry.close()

    out = tmp_path / "report"
    argv = ["telemetry", "report", "--telemetry", str(database), "--media", str(media)]
    assert await asyncio.to_thread(main, [*argv, "--out", str(out)]) == 0
    rows = {row["abr"]: row for row in json.loads((out / "summary.json").read_text())}
    assert rows["bba"]["sessions"] == 2 and rows["mpc"]["sessions"] == 1
    assert rows["bba"]["stall_ratio"] == pytest.approx(1.0 / 20.0)
    assert rows["mpc"]["stall_ratio"] == pytest.approx(2.0 / 8.0)
    assert rows["bba"]["startup_s"] == pytest.approx(0.75)
    assert rows["mpc"]["mean_quality_db"] == pytest.approx(20.0)
    assert rows["bba"]["quality_variation_db"] == pytest.approx((4.0 / 2 + 0.0) / 2)
    assert (
        rows["bba"]["stall_ratio_low"]
        <= rows["bba"]["stall_ratio"]
        <= rows["bba"]["stall_ratio_high"]
    )
    assert (out / "stall_vs_quality.png").stat().st_size > 1000
    assert "| bba | 2 |" in capsys.readouterr().out

    prune = ["telemetry", "prune", "--telemetry", str(database), "--days", str(450 / 86400)]
    assert await asyncio.to_thread(main, prune) == 0
    assert "deleted" in capsys.readouterr().out
    with sqlite3.connect(database) as db:
        assert [r[0] for r in db.execute("SELECT id FROM sessions ORDER BY id")] == ["s2"]
