"""Which ready cells of a live channel go out together (no feed, no runner)."""

from __future__ import annotations

from dataclasses import dataclass

from authoring.levels import LevelSpec
from authoring.live.batches import CellQueue

LEVELS = (LevelSpec(2, 5), LevelSpec(4, 5))


@dataclass
class Record:
    done: bool = False


def cells(segments: range, level_id: int) -> list[tuple[int, int, Record]]:
    return [(segment, level_id, Record()) for segment in segments]


def names(batches: list) -> list[list[tuple[int, int]]]:
    return [[(segment, level) for segment, level, _ in batch] for batch in batches]


def test_one_cell_per_batch_goes_out_at_once_whatever_runs() -> None:
    queue = CellQueue(LEVELS, batch_size=1, workers=1)
    for cell in cells(range(2), 0) + cells(range(1), 1):
        queue.add(cell)
    assert names(queue.take(in_flight=5, steps=[0, 0])) == [[(0, 0)], [(1, 0)], [(0, 1)]]
    assert queue.take(in_flight=0, steps=[0, 0]) == []


def test_cells_wait_while_every_worker_is_busy_then_stack_by_level() -> None:
    queue = CellQueue(LEVELS, batch_size=3, workers=2)
    for segment in range(4):  # four segments arrived while both workers fitted
        for level_id in range(2):
            queue.add((segment, level_id, Record()))
    assert queue.take(in_flight=2, steps=[0, 0]) == []
    assert names(queue.take(in_flight=1, steps=[0, 0])) == [
        [(0, 0), (1, 0), (2, 0)], [(3, 0)], [(0, 1), (1, 1), (2, 1)], [(3, 1)],
    ]  # fmt: skip


def test_a_degraded_level_fits_apart_and_gaps_are_dropped() -> None:
    queue = CellQueue((LevelSpec(2, 5), LevelSpec(2, 10)), batch_size=4, workers=1)
    waiting = cells(range(3), 0)
    for cell in waiting:
        queue.add(cell)
    waiting[1][2].done = True  # became a gap while it waited
    queue.add((0, 1, Record()))  # another interval: never with level 0
    assert names(queue.take(in_flight=0, steps=[0, 0])) == [[(0, 0), (2, 0)], [(0, 1)]]
    queue.add((3, 0, Record()))
    queue.add((4, 0, Record()))
    steps = [1, 0]  # level 0 degraded after (3, 0) was queued: both now fit at step 1
    assert names(queue.take(in_flight=0, steps=steps)) == [[(3, 0), (4, 0)]]
