"""Delivery and ack bookkeeping of one connection (no sockets, times passed in)."""

from __future__ import annotations

from server.deliveries import MAX_PENDING_ACKS, Deliveries, Delivery


def delivery(chunk: int, level: int = 0, at: float = 0.0) -> Delivery:
    return Delivery(
        chunk=chunk,
        level=level,
        size=640,
        prefix_bytes=0,
        requested_at=at,
        sent_at=at + 0.001,
    )


def test_an_ack_returns_its_delivery_once() -> None:
    deliveries = Deliveries()
    sent = delivery(3, level=1)
    assert deliveries.sent(sent) is None
    assert deliveries.acked(3, 1) == sent
    assert deliveries.acked(3, 1) is None
    assert len(deliveries) == 0


def test_an_ack_of_nothing_sent_is_none_and_forgets_nothing() -> None:
    deliveries = Deliveries()
    deliveries.sent(delivery(3, level=1))
    assert deliveries.acked(3, 0) is None
    assert deliveries.acked(4, 1) is None
    assert len(deliveries) == 1


def test_the_oldest_delivery_is_pushed_out_past_the_limit() -> None:
    deliveries = Deliveries(limit=3)
    for chunk in range(3):
        assert deliveries.sent(delivery(chunk)) is None
    assert deliveries.sent(delivery(3)) == delivery(0)
    assert deliveries.sent(delivery(4)) == delivery(1)
    assert [d.chunk for d in deliveries.drain()] == [2, 3, 4]


def test_the_default_limit() -> None:
    deliveries = Deliveries()
    evicted = [deliveries.sent(delivery(chunk)) for chunk in range(MAX_PENDING_ACKS + 2)]
    assert [d.chunk for d in evicted if d is not None] == [0, 1]
    assert len(deliveries) == MAX_PENDING_ACKS == 64


def test_a_chunk_sent_again_replaces_its_delivery_in_place() -> None:
    deliveries = Deliveries()
    deliveries.sent(delivery(0, at=1.0))
    deliveries.sent(delivery(1, at=2.0))
    assert deliveries.sent(delivery(0, at=3.0)) is None
    assert deliveries.drain() == [delivery(0, at=3.0), delivery(1, at=2.0)]


def test_drain_empties_oldest_first_after_acks() -> None:
    deliveries = Deliveries()
    for chunk in range(4):
        deliveries.sent(delivery(chunk))
    deliveries.acked(1, 0)
    assert [d.chunk for d in deliveries.drain()] == [0, 2, 3]
    assert deliveries.drain() == []
    assert len(deliveries) == 0
