"""The cells of a live channel, from their segment's arrival to their publication.

A *cell* is one (segment, level) to fit. ``CellBook`` keeps every cell not yet published: the
task it waits on (a batch task carries several cells), how often it was submitted, and its
outcome (a ``SegmentResult``, or None for a gap). The rules, apart from the threads and the
runner that ``authoring.live.channel`` drives:

- **deadline**: a cell not done ``max_latency_s`` after its segment was ready (its last frame
  captured) is overdue; the channel publishes it as a gap;
- **retry**: a cell whose task failed is submitted again while it has submissions left
  (``retries`` after the first) and its deadline has not passed;
- **gap**: a cell that becomes a gap cancels its task only once no other cell waits on it;
- **order**: each level publishes its segments in order, so a done cell leaves the book only
  after every earlier segment of its level did.

Pure: time comes in as numbers, and the runner's task handles are only compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from authoring.live.cutter import LiveSegment
from authoring.runner import TaskHandle


@dataclass(eq=False)
class Cell:
    """One (segment, level): its task, attempts, and outcome."""

    segment: LiveSegment
    level_id: int
    handle: TaskHandle | None = None  # the task it waits on (None: waiting to be submitted)
    attempts: int = 0  # submissions so far
    done: bool = False
    result: Any = None  # SegmentResult, or None for a gap


class CellBook:
    """The cells of one channel that are not yet published (module docstring)."""

    def __init__(self, levels: int, *, max_latency_s: float, retries: int) -> None:
        self.max_latency_s = max_latency_s
        self.retries = retries
        self.next = [0] * levels  # the next segment to publish, per level
        self._cells: dict[tuple[int, int], Cell] = {}

    def open(self, segment: LiveSegment) -> list[Cell]:
        """The cells of a segment that arrived, one per level."""
        return [
            self._cells.setdefault((segment.index, level_id), Cell(segment, level_id))
            for level_id in range(len(self.next))
        ]

    def submitted(self, cells: Iterable[Cell], handle: TaskHandle) -> None:
        """``cells`` now wait on the task ``handle``."""
        for cell in cells:
            cell.attempts += 1
            cell.handle = handle

    def deadline(self, cell: Cell) -> float:
        """When the cell becomes a gap unless it is done (wall-clock seconds)."""
        return cell.segment.ready_at + self.max_latency_s

    def in_flight(self) -> int:
        """Tasks that some cell still waits on."""
        return len(self.running())

    def running(self) -> list[TaskHandle]:
        """The tasks that some cell still waits on, each once."""
        handles = (cell.handle for cell in self._cells.values() if not cell.done)
        return list(dict.fromkeys(handle for handle in handles if handle is not None))

    def awaits(self, cell: Cell, handle: TaskHandle) -> bool:
        """Whether a completion of ``handle`` decides ``cell`` (not an attempt superseded, nor a
        cell already done: published, or a gap by its deadline)."""
        return not cell.done and cell.handle is handle

    def retry(self, cell: Cell, now: float) -> bool:
        """Whether a cell whose task failed at ``now`` is submitted again (if so, it waits to be
        submitted: no task)."""
        if cell.attempts <= self.retries and now < self.deadline(cell):
            cell.handle = None
            return True
        return False

    def fitted(self, cell: Cell, result: Any) -> None:
        cell.done, cell.result = True, result

    def gap(self, cell: Cell) -> TaskHandle | None:
        """The cell becomes a gap; returns its task when no other cell waits on it (to cancel)."""
        handle = cell.handle
        cell.done, cell.result = True, None
        if handle is None or any(
            other.handle is handle and not other.done for other in self._cells.values()
        ):
            return None
        return handle

    def overdue(self, now: float) -> list[Cell]:
        """The cells not done whose deadline passed before ``now``."""
        return [c for c in self._cells.values() if not c.done and now > self.deadline(c)]

    def publishable(self) -> list[Cell]:
        """The done cells each level publishes now, in order; they leave the book."""
        ready = []
        for level_id in range(len(self.next)):
            while True:
                cell = self._cells.get((self.next[level_id], level_id))
                if cell is None or not cell.done:
                    break
                ready.append(cell)
                del self._cells[(self.next[level_id], level_id)]
                self.next[level_id] += 1
        return ready

    def published_all(self, segments: int) -> bool:
        """Whether every level published the first ``segments`` segments."""
        return all(n >= segments for n in self.next)
