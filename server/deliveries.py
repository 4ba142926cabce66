"""The chunks a viewer was sent and has not acked yet (pure bookkeeping, no sockets).

Each delivery becomes one telemetry row: when the viewer acks it, when it falls out of the
bounded memory (the oldest goes first), or when the session ends. Times are passed in (wall
clock, seconds), never read here.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PENDING_ACKS = 64  # deliveries remembered for their ack; older ones are logged as unacked


@dataclass(slots=True)  # not frozen: built on every `get`, and frozen __init__ costs ~3x
class Delivery:
    """One chunk sent on a connection (never changed once built)."""

    chunk: int
    level: int
    size: int  # bytes of the chunk itself
    prefix_bytes: int  # bytes of the switch prefix sent in front of it (0: none)
    requested_at: float  # when its `get` was handled, s (wall clock)
    sent_at: float  # when the chunk message was handed to the socket, s (wall clock)


class Deliveries:
    """The unacked deliveries of one connection, oldest first, at most ``limit`` of them."""

    def __init__(self, limit: int = MAX_PENDING_ACKS) -> None:
        self.limit = limit
        self._pending: dict[tuple[int, int], Delivery] = {}  # (chunk, level) -> delivery

    def __len__(self) -> int:
        return len(self._pending)

    def sent(self, delivery: Delivery) -> Delivery | None:
        """Remember a delivery; the oldest one it pushes out of memory, if any (unacked).

        A chunk sent again replaces its earlier delivery, which keeps its place in the order.
        """
        evicted = None
        if len(self._pending) >= self.limit:
            evicted = self._pending.pop(next(iter(self._pending)))
        self._pending[(delivery.chunk, delivery.level)] = delivery
        return evicted

    def acked(self, chunk: int, level: int) -> Delivery | None:
        """The delivery an ack is for, forgotten now; None for an ack of nothing we sent."""
        return self._pending.pop((chunk, level), None)

    def drain(self) -> list[Delivery]:
        """Every unacked delivery, oldest first; none are remembered after."""
        pending = list(self._pending.values())
        self._pending.clear()
        return pending
