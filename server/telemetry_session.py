"""One viewer connection's telemetry: the session each `hello` opens, its deliveries, its reports.

A connection may add ``telemetry_rows_per_min`` rows a minute (bursts of a quarter of it); the
rest are counted in ``Telemetry.throttled``, not written. A session whose own row was not
written writes none of its other rows either (they would point at nothing). No sockets: the
viewer calls these methods, and they only queue rows on :class:`server.telemetry.Telemetry`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from server.deliveries import Deliveries, Delivery
from server.rate_limit import TokenBucket
from server.telemetry import Telemetry
from wire.media import Stats


class TelemetrySession:
    """The telemetry side of one connection; ``id`` is None until a `hello` and after `end`."""

    def __init__(self, telemetry: Telemetry, rows_per_min: int, clock: Callable[[], float]) -> None:
        self.telemetry = telemetry
        self.clock = clock
        self.rows = TokenBucket(rows_per_min / 60.0, max(1, rows_per_min // 4), clock())
        self.id: str | None = None
        self.channel = ""  # of the current session
        self.recorded = False  # whether the session's row was written (its other rows follow it)
        self.deliveries = Deliveries()  # sent and not acked yet

    def may_record(self) -> bool:
        """Whether this connection may add a telemetry row now (its rows per minute)."""
        if self.rows.allow(self.clock()):
            return True
        self.telemetry.throttled += 1
        return False

    def start(
        self,
        *,
        channel: str,
        user_agent: str | None,
        abr: str | None,
        generator_id: str,
        server_id: str,
    ) -> None:
        """A `hello`: end the current session, if any, and open a new one."""
        self.end()
        self.channel = channel
        self.id = uuid.uuid4().hex
        self.recorded = self.may_record()
        if self.recorded:
            self.telemetry.session_started(
                self.id,
                channel=channel,
                user_agent=user_agent,
                abr=abr,
                generator_id=generator_id,
                server_id=server_id,
            )

    def report(self, stats: Stats) -> None:
        """A `stats` message of the current session."""
        assert self.id is not None
        if self.recorded and self.may_record():
            self.telemetry.report(self.id, stats)

    def sent(self, delivery: Delivery) -> None:
        """A chunk was sent; the oldest unacked delivery past the memory's bound is written."""
        evicted = self.deliveries.sent(delivery)
        if evicted is not None:
            self._write(evicted, acked_at=None)

    def acked(self, chunk: int, level: int, at: float) -> None:
        """An `ack`; one for nothing we sent is ignored."""
        delivery = self.deliveries.acked(chunk, level)
        if delivery is not None:
            self._write(delivery, acked_at=at)

    def end(self) -> None:
        """Write the unacked deliveries and the end of the current session, if any."""
        if self.id is None:
            return
        for delivery in self.deliveries.drain():
            self._write(delivery, acked_at=None)
        if self.recorded:
            self.telemetry.session_ended(self.id)
        self.id = None

    def _write(self, delivery: Delivery, acked_at: float | None) -> None:
        assert self.id is not None
        if not (self.recorded and self.may_record()):
            return
        self.telemetry.delivery(
            self.id,
            channel=self.channel,
            level=delivery.level,
            chunk=delivery.chunk,
            size=delivery.size,
            prefix_bytes=delivery.prefix_bytes,
            requested_at=delivery.requested_at,
            sent_at=delivery.sent_at,
            acked_at=acked_at,
        )
