"""Which cells of a live channel go out together: the cells waiting for a task, in batches.

A cell is one (segment, level) to fit. Cells wait here from the moment they are ready (their
segment arrived, the generator is prepared, or a failed attempt is to be retried) until a batch
takes them: at once with one cell per batch (each cell its own task), else as soon as a worker
is free, so that the cells that arrive while every worker is busy (the channel lags) share the
next step. A batch holds cells of equal rank, interval and degrade step (their problems stack
and they fit with the same options), at most ``batch_size`` of them, in arrival order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authoring.levels import LevelSpec
from authoring.segment_batch import stack_batches

Cell = tuple[Any, int, Any]  # (LiveSegment, level id, the channel's cell record with ``done``)


class CellQueue:
    """Ready cells of one channel's levels, handed out in batches (module docstring)."""

    def __init__(self, levels: Sequence[LevelSpec], batch_size: int, workers: int) -> None:
        self.levels = levels
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self._ready: list[Cell] = []

    def add(self, cell: Cell) -> None:
        self._ready.append(cell)

    def take(self, in_flight: int, steps: Sequence[int]) -> list[list[Cell]]:
        """The batches to submit now, ``in_flight`` tasks running and ``steps`` the levels'
        degrade steps; cells that became gaps meanwhile (``done``) are dropped."""
        ready = [cell for cell in self._ready if not cell[2].done]
        if not ready or (self.batch_size > 1 and in_flight >= self.workers):
            self._ready = ready
            return []
        self._ready = []

        def key(cell: Cell) -> tuple[int, int, int]:
            level = self.levels[cell[1]]
            return (level.rank, level.interval, steps[cell[1]])

        return stack_batches(ready, key, self.batch_size)
