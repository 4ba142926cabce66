"""Token buckets; time is passed in so tests need no clock."""

from __future__ import annotations


class TokenBucket:
    """Allows ``rate`` units per second on average and ``burst`` at once (a message is one
    unit by default; a byte budget spends a message's size)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are that many."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled completely (nothing spent is still remembered)."""
        self._refill(now)
        return self.tokens >= self.burst

    def wait_s(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0 when they are now)."""
        self._refill(now)
        return max(0.0, (cost - self.tokens) / self.rate) if self.rate > 0 else float("inf")
