"""One connection's telemetry rows: sessions, deliveries, reports and their rows per minute."""

from __future__ import annotations

from typing import Any

from server.deliveries import MAX_PENDING_ACKS, Delivery
from server.telemetry import Telemetry
from server.telemetry_session import TelemetrySession
from wire.media import Stats


class Rows(Telemetry):
    """A telemetry queue that keeps its rows in a list (no database, no flush task)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.rows: list[tuple[str, tuple[Any, ...]]] = []

    def _put(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows.append((table, row))

    def tables(self) -> list[str]:
        return [table for table, _ in self.rows]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def delivery(chunk: int, level: int = 0) -> Delivery:
    return Delivery(
        chunk=chunk, level=level, size=640, prefix_bytes=64, requested_at=1.0, sent_at=1.5
    )


def started(rows_per_min: int = 240) -> tuple[TelemetrySession, Rows, Clock]:
    rows, clock = Rows(), Clock()
    session = TelemetrySession(rows, rows_per_min, clock)
    session.start(
        channel="sky", user_agent="test", abr="bola", generator_id="test:0", server_id="s1"
    )
    return session, rows, clock


def stats() -> Stats:
    return Stats(buffer_s=1.0, stalls=0, stall_s=0.0, level=0)


def test_no_session_before_a_hello() -> None:
    session = TelemetrySession(Rows(), 240, Clock())
    assert session.id is None
    session.end()  # nothing to end


def test_an_acked_delivery_is_one_row_with_its_ack_time() -> None:
    session, rows, _ = started()
    assert session.id is not None
    session.sent(delivery(2, level=1))
    session.acked(2, 1, at=2.0)
    session.acked(2, 1, at=3.0)  # twice: ignored
    assert rows.rows[1] == ("deliveries", (session.id, "sky", 1, 2, 640, 64, 1.0, 1.5, 2.0))
    assert rows.tables() == ["sessions", "deliveries"]


def test_the_end_writes_unacked_deliveries_then_the_end() -> None:
    session, rows, _ = started()
    first = session.id
    session.sent(delivery(0))
    session.sent(delivery(1))
    session.end()
    assert session.id is None
    assert rows.tables() == ["sessions", "deliveries", "deliveries", "ended"]
    assert [row[3] for table, row in rows.rows if table == "deliveries"] == [0, 1]
    assert all(row[-1] is None for table, row in rows.rows if table == "deliveries")
    assert rows.rows[-1][1][1] == first


def test_a_new_hello_ends_the_session_before_it() -> None:
    session, rows, _ = started()
    first = session.id
    session.sent(delivery(0))
    session.start(channel="sea", user_agent=None, abr=None, generator_id="g", server_id="s1")
    assert session.id not in (None, first)
    assert rows.tables() == ["sessions", "deliveries", "ended", "sessions"]
    assert rows.rows[1][1][:2] == (first, "sky")
    assert rows.rows[3][1][:3] == (session.id, "s1", "sea")


def test_the_oldest_unacked_delivery_is_written_when_memory_is_full() -> None:
    session, rows, _ = started(rows_per_min=6000)
    for chunk in range(MAX_PENDING_ACKS + 1):
        session.sent(delivery(chunk))
    assert rows.tables() == ["sessions", "deliveries"]
    assert rows.rows[1][1][3] == 0 and rows.rows[1][1][-1] is None


def test_rows_over_the_rate_are_counted_not_written() -> None:
    session, rows, clock = started(rows_per_min=8)  # bursts of 2 rows
    session.report(stats())
    session.report(stats())
    assert rows.tables() == ["sessions", "reports"]
    assert rows.throttled == 1
    clock.now += 60 / 8  # one row's worth of time
    session.report(stats())
    assert rows.tables() == ["sessions", "reports", "reports"]


def test_a_session_whose_row_was_throttled_writes_nothing() -> None:
    rows, clock = Rows(), Clock()
    session = TelemetrySession(rows, 4, clock)  # a burst of 1 row
    session.start(channel="a", user_agent=None, abr=None, generator_id="g", server_id="s")
    session.start(channel="b", user_agent=None, abr=None, generator_id="g", server_id="s")
    assert session.id is not None and not session.recorded
    clock.now += 60
    session.sent(delivery(0))
    session.report(stats())
    session.end()
    assert rows.tables() == ["sessions", "ended"]  # of the first session only
    assert rows.throttled == 1
