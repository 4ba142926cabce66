"""The generation thread's fair share (in time, not in slices), cancellation, release."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator

import pytest

from client_daemon.scheduler import SliceScheduler

SLICE_S = 0.005  # each slice "generates" this long


def work(
    name: str, slices: int, log: list[str], slice_s: float = SLICE_S
) -> Generator[None, None, str]:
    for _ in range(slices):
        log.append(name)
        time.sleep(slice_s)
        yield
    return name


async def test_a_long_job_does_not_hold_a_short_one_back_more_than_a_slice() -> None:
    log: list[str] = []
    released: list[int] = []
    scheduler = SliceScheduler(after_failure=lambda: released.append(1))
    try:
        hostile = scheduler.submit(work("hostile", 50, log), owner="hostile")
        while not log:  # the hostile job holds the thread
            await asyncio.sleep(0.001)
        queued_at = len(log)  # hostile slices begun so far (a loaded machine may let several run)
        polite = scheduler.submit(work("polite", 3, log), owner="polite")
        assert await polite == "polite"
        first = log.index("polite")
        waited = first - queued_at  # at most the slice under way (and one begun meanwhile)
        assert waited <= 2, log[:first]
        assert log[first:].count("polite") == 3 and log[first:].index("hostile") <= 2
        assert await hostile == "hostile"
        assert released == []
    finally:
        scheduler.shutdown(wait=True)


async def test_turns_are_fair_in_time_not_in_slices() -> None:
    """Issue 29: a page whose slices are slow (large frames) got one slice per turn like any
    other, so a page of quick slices waited for one slow slice per quick one. Now the owner that
    used less time goes first: the quick page's whole chunk runs after the slow slice under way,
    and over a long run each owner gets about the same time."""
    log: list[str] = []
    scheduler = SliceScheduler()
    try:
        slow = scheduler.submit(work("slow", 8, log, slice_s=0.1), owner="slow")
        while not log:
            await asyncio.sleep(0.001)
        queued_at = len(log)
        quick = scheduler.submit(work("quick", 10, log, slice_s=0.001), owner="quick")
        assert await quick == "quick"
        slow_meanwhile = log[queued_at : len(log)].count("slow")
        assert slow_meanwhile <= 2, log  # round-robin in slices: 10 slow slices (1 s)
        assert await slow == "slow"
        assert scheduler.used_s("slow") >= 0.8 and scheduler.used_s("quick") < 0.5
        scheduler.forget("quick")
        assert scheduler.used_s("quick") == 0.0
        # an owner that comes back after idling starts at the current virtual time: no credit
        again = scheduler.submit(work("quick", 1, log, slice_s=0.001), owner="quick")
        await again
        assert scheduler.used_s("quick") >= 0.6  # the slow owner's time before its last slice
    finally:
        scheduler.shutdown(wait=True)


async def test_cancelled_work_stops_at_the_next_slice_and_memory_is_released() -> None:
    log: list[str] = []
    released: list[int] = []
    scheduler = SliceScheduler(after_failure=lambda: released.append(1))
    try:
        endless = scheduler.submit(work("endless", 10**9, log))
        while len(log) < 3:
            await asyncio.sleep(0.001)
        endless.cancel()
        assert await scheduler.call(len, "ok") == 2  # the thread is free again
        ran = len(log)
        await asyncio.sleep(0.05)
        assert len(log) == ran and released == [1]
    finally:
        scheduler.shutdown(wait=True)


async def test_a_failure_reaches_the_future_and_releases_memory() -> None:
    released: list[int] = []
    scheduler = SliceScheduler(after_failure=lambda: released.append(1))

    def failing() -> Generator[None, None, None]:
        yield
        raise MemoryError("out of memory in slice 2")

    try:
        with pytest.raises(MemoryError, match="slice 2"):
            await scheduler.submit(failing())
        assert released == [1]
        assert await scheduler.call(sum, [1, 2]) == 3
    finally:
        scheduler.shutdown(wait=True)
