"""The cells of a live channel: deadlines, retries, gaps of batches, publication in order (no
feed, no runner: task handles are made by hand)."""

from __future__ import annotations

import numpy as np

from authoring.live.cells import CellBook
from authoring.live.cutter import LiveSegment
from authoring.runner import TaskHandle

READY_AT = 100.0  # s: when each test segment's last frame was captured


def segment(index: int) -> LiveSegment:
    return LiveSegment(
        index=index, first_chunk=index, end_chunk=index + 1, chunk_frames=5,
        total_frames=5 * index + 6, frames=np.zeros((6, 8, 8, 3), np.uint8),
        captured_at=(READY_AT + index,) * 6,
    )  # fmt: skip


def book(levels: int = 2, retries: int = 1) -> CellBook:
    return CellBook(levels, max_latency_s=10.0, retries=retries)


def test_a_segment_opens_one_cell_per_level_and_once() -> None:
    cells = book()
    first = cells.open(segment(0))
    assert [(c.segment.index, c.level_id) for c in first] == [(0, 0), (0, 1)]
    assert cells.open(segment(0)) == first and cells.in_flight() == 0


def test_a_batch_is_one_task_in_flight_until_its_cells_are_done() -> None:
    cells = book(levels=1)
    batch = cells.open(segment(0)) + cells.open(segment(1))
    task = TaskHandle("fit r2n5-0000 +1")
    cells.submitted(batch, task)
    assert cells.in_flight() == 1 and cells.running() == [task]
    assert all(c.attempts == 1 and cells.awaits(c, task) for c in batch)
    assert not cells.awaits(batch[0], TaskHandle("an older attempt"))
    cells.fitted(batch[0], "result")
    assert not cells.awaits(batch[0], task) and cells.in_flight() == 1
    cells.fitted(batch[1], "result")
    assert cells.in_flight() == 0 and cells.running() == []


def test_a_failed_cell_is_retried_while_submissions_and_its_deadline_allow() -> None:
    cells = book(levels=1, retries=1)
    (cell,) = cells.open(segment(0))
    cells.submitted([cell], TaskHandle("first"))
    assert not cells.retry(cell, READY_AT + 10.0)  # the deadline itself: too late
    assert cells.retry(cell, READY_AT + 9.0) and cell.handle is None  # waits to go out again
    cells.submitted([cell], TaskHandle("second"))
    assert not cells.retry(cell, READY_AT + 1.0)  # both submissions spent


def test_overdue_cells_are_those_not_done_past_their_deadline() -> None:
    cells = book(levels=1)
    late, later = cells.open(segment(0)) + cells.open(segment(1))
    assert cells.overdue(READY_AT + 10.0) == []  # at the deadline: not yet
    assert cells.overdue(READY_AT + 10.5) == [late]
    cells.fitted(late, "result")
    assert cells.overdue(READY_AT + 20.0) == [later]


def test_a_gap_cancels_its_task_only_when_no_other_cell_of_the_batch_waits() -> None:
    cells = book(levels=1)
    batch = cells.open(segment(0)) + cells.open(segment(1))
    task = TaskHandle("fit r2n5-0000 +1")
    cells.submitted(batch, task)
    assert cells.gap(batch[0]) is None  # segment 1 still waits on the task
    assert batch[0].done and batch[0].result is None
    assert cells.gap(batch[1]) is task
    (waiting,) = cells.open(segment(2))
    assert cells.gap(waiting) is None  # never submitted: no task to cancel


def test_each_level_publishes_in_order_and_published_cells_leave() -> None:
    cells = book(levels=2)
    (a0, a1), (b0, b1) = cells.open(segment(0)), cells.open(segment(1))
    cells.fitted(b0, "b0")  # segment 1 of level 0 is done before segment 0
    cells.fitted(a1, "a1")
    assert cells.publishable() == [a1] and cells.next == [0, 1]
    cells.fitted(a0, "a0")
    assert cells.publishable() == [a0, b0] and cells.next == [2, 1]
    assert not cells.published_all(2)
    cells.gap(b1)
    assert cells.publishable() == [b1] and cells.published_all(2)
    assert cells.publishable() == [] and cells.overdue(READY_AT + 60.0) == []
