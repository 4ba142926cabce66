"""LogThrottle: one line per key per interval, held-back lines counted in the next one."""

from __future__ import annotations

import logging

import pytest

from common.log_throttle import OTHER_KEYS, LogThrottle
from tests.server.conftest import HandClock


def test_one_line_per_key_per_interval_and_the_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = HandClock()
    throttle = LogThrottle(logging.getLogger("throttled"), 60.0, clock=clock)
    with caplog.at_level(logging.INFO, "throttled"):
        for _ in range(1000):
            throttle.log(logging.WARNING, "a", "bad request from %s", "a")
        throttle.log(logging.WARNING, "b", "bad request from %s", "b")
        clock.advance(59.0)
        assert not throttle.log(logging.WARNING, "a", "bad request from %s", "a")
        clock.advance(1.0)
        assert throttle.log(logging.WARNING, "a", "bad request from %s", "a")
    assert [r.getMessage() for r in caplog.records] == [
        "bad request from a",
        "bad request from b",
        "bad request from a (1000 more like it in the last 60 s)",
    ]
    assert (throttle.written, throttle.held_back) == (3, 1000)


def test_keys_are_bounded_new_ones_share_a_key_until_old_ones_are_stale() -> None:
    clock = HandClock()
    throttle = LogThrottle(logging.getLogger("throttled"), 60.0, clock=clock, max_keys=3)
    for key in "abc":
        assert throttle.log(logging.INFO, key, "line")
    assert throttle.log(logging.INFO, "d", "line")  # the shared key's first line
    assert not throttle.log(logging.INFO, "e", "line")  # shares it
    assert set(throttle._keys) == {"a", "b", "c", OTHER_KEYS}
    clock.advance(60.0)
    assert throttle.log(logging.INFO, "f", "line")  # the stale keys made room
    assert "f" in throttle._keys and len(throttle._keys) <= 4
