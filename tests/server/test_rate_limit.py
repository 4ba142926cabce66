"""The per-connection token bucket."""

from __future__ import annotations

from server.rate_limit import TokenBucket


def test_burst_then_sustained_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.05) is False  # half a token
    assert bucket.allow(0.1) is True
    assert [bucket.allow(10.0) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]  # refill capped at burst
