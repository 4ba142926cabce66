"""The live channel's pump thread: completions reach the driver's queue, a broken runner is kept."""

from __future__ import annotations

import time
from collections.abc import Iterator

from authoring.live.pump import TaskPump
from authoring.runner import Completed, LocalRunner, TaskResources


def test_a_submitted_task_reaches_the_driver_once_the_pump_is_notified() -> None:
    runner = LocalRunner()
    pump = TaskPump(runner)
    try:
        assert pump.get(timeout_s=0.01) is None  # nothing submitted yet
        handle = runner.submit(sum, [1, 2], name="sum", resources=TaskResources())
        pump.notify()
        done = pump.get(timeout_s=5.0)
        assert done is not None and done.handle is handle and done.value == 3 and done.ok
    finally:
        pump.stop()
    assert pump.failed is None


class BrokenRunner(LocalRunner):
    def as_completed(self) -> Iterator[Completed]:
        raise ConnectionError("the cluster went away")


def test_a_runner_that_breaks_is_reported_not_raised_on_the_pump_thread() -> None:
    pump = TaskPump(BrokenRunner())
    try:
        deadline = time.monotonic() + 5.0
        while pump.failed is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(pump.failed, ConnectionError)
        assert pump.get(timeout_s=0.01) is None
    finally:
        pump.stop()
