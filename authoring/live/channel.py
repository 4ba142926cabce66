"""The rolling fit of a live channel: the feed's segments become tasks, their chunks a live ladder.

Three threads: the *ingest* thread reads the feed and cuts segments (``ingest``); the *pump*
thread collects finished tasks from the runner (Ray, or this process: ``pump``); the driver
(the caller's thread) submits one task per (segment, level), publishes each level's segments
in order, and watches the clock:

- **deadline**: a (segment, level) not fitted within ``max_latency_s`` of the moment its last
  frame was captured is published as a *gap* (its task cancelled), so one slow level or a
  stuck task never holds back the channel;
- **retry**: a task that fails is submitted again while its deadline allows (a worker that
  dies is also re-run by Ray itself, resuming from the segment's checkpoint); each cell's
  task, attempts and outcome, and these two rules: ``authoring.live.cells``;
- **batches**: cells (segment, level) ready at the same moment (the levels of a new segment,
  the segments that arrived before the generator was prepared, or, with more than one cell per
  step, those that arrived while every worker was busy) go out as one task per batch of
  ``segments_per_step`` cells that stack (``authoring.live.batches``), fitted in lockstep
  (``authoring.segment_batch``);
- **degrade**: a level whose results arrive late (more than ``degrade_at`` of the deadline)
  gets half the iteration budget for its next segments (down to 1/8), and recovers step by
  step once it is back under ``recover_at`` (the rule: ``authoring.live.policy``).

Each publication (chunk, level) is reported with its latency: capture of the chunk's first
frame to publication.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authoring.levels import CHECKPOINT_DIR, LevelSpec
from authoring.live.batches import CellQueue
from authoring.live.cells import Cell, CellBook
from authoring.live.cutter import LiveSegment
from authoring.live.feed import CapturedFrame
from authoring.live.ingest import IngestThread
from authoring.live.policy import DegradePolicy, StepChange
from authoring.live.publisher import LivePublisher, Publication
from authoring.live.pump import TaskPump
from authoring.runner import Completed, TaskHandle, TaskResources, TaskRunner
from authoring.segment_batch import batch_size_for
from authoring.tasks import TaskOutput, checkpoint_dir_for, fit_segments_task, prepare_title
from common.errors import UserError
from prompts.manifest import Manifest

log = logging.getLogger(__name__)


class LiveError(UserError, RuntimeError):
    """The channel cannot go on (the feed failed, the generator could not be prepared)."""


@dataclass(frozen=True)
class LiveSettings:
    channel: str
    media: Path
    levels: tuple[LevelSpec, ...]
    options: Any  # authoring.build.FitOptions
    chunk_frames: int
    segment_chunks: int = 1
    window_chunks: int | None = None  # None: keep every chunk
    max_latency_s: float = 60.0  # a (segment, level) not fitted by then becomes a gap
    retries: int = 2  # submissions again of a task that failed (before its deadline)
    degrade_at: float = 0.5  # of max_latency_s: later results halve the level's budget
    recover_at: float = 0.25  # of max_latency_s: earlier results restore it step by step
    measure_quality: bool = True
    segments_per_step: int | str = 1  # cells per batch task, or "auto" (by GPU memory)

    @property
    def path(self) -> Path:
        return self.media / self.channel


@dataclass
class LiveSummary:
    """What a run published."""

    publications: list[Publication] = field(default_factory=list)
    gaps: int = 0
    retries: int = 0
    degraded: list[tuple[str, int]] = field(default_factory=list)  # (level, step) changes
    manifest: Manifest | None = None


class LiveChannel:
    """Runs one live channel from a feed until the feed ends (or ``stop()``)."""

    def __init__(
        self,
        settings: LiveSettings,
        *,
        runner: TaskRunner,
        loader: Any,
        resources: TaskResources,
        fps: float,
        size: int,
        report: Callable[[Publication], None] = lambda publication: None,
        note: Callable[[str], None] = log.info,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.loader = loader
        self.resources = resources
        self.fps = fps
        self.size = size
        self.report = report
        self.note = note
        self.clock = clock
        self.summary = LiveSummary()
        self.publisher: LivePublisher | None = None
        self._init_latent: Any = None
        self._cells = CellBook(
            len(settings.levels), max_latency_s=settings.max_latency_s, retries=settings.retries
        )
        self.policy = DegradePolicy(
            len(settings.levels), max_latency_s=settings.max_latency_s,
            degrade_at=settings.degrade_at, recover_at=settings.recover_at,
        )  # fmt: skip
        self._stop = threading.Event()
        self._ingest = IngestThread(
            settings.chunk_frames, settings.segment_chunks, settings.levels, self._stop
        )
        self._prepare: TaskHandle | None = None
        self._waiting: list[LiveSegment] = []  # arrived before the init latent was known
        workers = runner.gpus // resources.gpus if resources.gpus else runner.cpus // resources.cpus
        self._queue = CellQueue(
            settings.levels, batch_size_for(settings.segments_per_step), workers
        )  # cells not yet submitted

    def stop(self) -> None:
        """End the channel as if the feed ended now (from another thread)."""
        self._stop.set()

    # --- the driver -----------------------------------------------------------------------

    def run(self, frames: Iterable[CapturedFrame]) -> LiveSummary:
        """Ingest, fit and publish until the feed ends; returns what was published."""
        self._ingest.start(frames)
        pump = TaskPump(self.runner)
        self._pump = pump
        try:
            while not self._finished():
                if pump.failed is not None:
                    raise LiveError(f"the task runner failed: {pump.failed}") from pump.failed
                self._take_arrivals()
                done = pump.get()
                if done is not None:
                    self._on_completed(done)
                self._check_deadlines()
                self._publish_ready()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: finish the ladder with what is published
            self.note("interrupted: finishing the ladder with the chunks published so far")
        finally:
            self._stop.set()
            for handle in self._cells.running():
                self.runner.cancel(handle)
            pump.stop()
        if self.publisher is not None:
            self.summary.manifest = self.publisher.finish()
            shutil.rmtree(self.settings.path / CHECKPOINT_DIR, ignore_errors=True)
        return self.summary

    def _finished(self) -> bool:
        if self._stop.is_set():
            return True
        count = self._ingest.count
        return count is not None and self._cells.published_all(count)

    def _take_arrivals(self) -> None:
        for segment in self._ingest.take():
            self._on_arrival(segment)
        failure = self._ingest.failure
        if failure is not None:
            if isinstance(failure, UserError):
                raise failure
            raise LiveError(f"the feed failed: {failure}") from failure
        if self._ingest.count == 0:
            raise LiveError("the feed ended before one segment was complete")

    def _on_arrival(self, segment: LiveSegment) -> None:
        if self._init_latent is None:
            self._waiting.append(segment)
            if self._prepare is None:
                self._prepare = self.runner.submit(
                    prepare_title, segment.frames, self.loader, self.resources,
                    name=f"prepare {self.settings.channel}", resources=self.resources,
                )  # fmt: skip
                self._pump.notify()
        else:
            self._enqueue(self._cells.open(segment))

    def _enqueue(self, cells: Iterable[Cell]) -> None:
        """Cells ready to be fitted wait for a batch (``CellQueue``), then go out."""
        for cell in cells:
            self._queue.add((cell.segment, cell.level_id, cell))
        self._flush()

    def _flush(self) -> None:
        """Submit the ready cells that ``CellQueue`` hands out now."""
        for batch in self._queue.take(self._cells.in_flight(), self.policy.steps):
            self._submit([cell for _, _, cell in batch])

    def _submit(self, cells: list[Cell]) -> None:
        settings = self.settings
        options = self.policy.options_for(settings.options, cells[0].level_id)
        by_index = {c.segment.index: c.segment for c in cells}  # each segment's frames once
        order = list(by_index)
        feeds = [segment.channel_frames for segment in by_index.values()]
        segments = [
            c.segment.for_level(settings.channel, settings.levels[c.level_id], c.level_id)
            for c in cells
        ]
        name = f"fit {segments[0].name}" + (f" +{len(cells) - 1}" if len(cells) > 1 else "")
        handle = self.runner.submit(
            fit_segments_task, segments, [order.index(c.segment.index) for c in cells],
            self.loader, options, [self._init_latent] * len(cells),
            [settings.path / CHECKPOINT_DIR] * len(cells), self.resources,
            settings.measure_quality, False, settings.segments_per_step, *feeds,
            name=name, resources=self.resources, tag=cells,
        )  # fmt: skip
        self._cells.submitted(cells, handle)
        self._pump.notify()

    def _on_completed(self, done: Completed) -> None:
        if done.handle is self._prepare:
            self._on_prepared(done)
            return
        cells: list[Cell] = done.handle.tag
        results = done.value.value if done.ok else [None] * len(cells)
        for cell, result in zip(cells, results, strict=True):
            if self._cells.awaits(cell, done.handle):
                self._on_cell_done(done, cell, result)
        self._flush()

    def _on_cell_done(self, done: Completed, cell: Cell, result: Any) -> None:
        where = f"{self.settings.levels[cell.level_id].name} segment {cell.segment.index}"
        if not done.ok:
            if self._cells.retry(cell, self.clock()):
                self.note(f"{where} failed ({done.error}); retrying")
                self.summary.retries += 1
                self._queue.add((cell.segment, cell.level_id, cell))
            else:
                self.note(f"{where} failed ({done.error}): a gap")
                self._gap(cell)
            return
        self._cells.fitted(cell, result)
        lag_s = self.clock() - cell.segment.ready_at
        self._degraded(self.policy.on_result(cell.level_id, lag_s))

    def _on_prepared(self, done: Completed) -> None:
        if not done.ok:
            raise LiveError(f"cannot prepare the generator: {done.error}")
        output: TaskOutput = done.value
        setup = output.value
        self._init_latent = setup.init_latent
        settings = self.settings
        self.publisher = LivePublisher(
            settings.path, fps=self.fps, size=self.size, chunk_frames=settings.chunk_frames,
            levels=settings.levels, generator_id=setup.generator_id,
            generator_name=setup.generator_name, latent=setup.latent, init_latent=setup.init_latent,
            window_chunks=settings.window_chunks, clock=self.clock,
        )  # fmt: skip
        self.note(f"generator {setup.generator_name} ({setup.generator_id}) on {output.device}")
        waiting, self._waiting = self._waiting, []
        self._enqueue(cell for segment in waiting for cell in self._cells.open(segment))

    def _degraded(self, change: StepChange | None) -> None:
        """Report a level's new iteration budget (``DegradePolicy``)."""
        if change is None:
            return
        name = self.settings.levels[change.level_id].name
        self.summary.degraded.append((name, change.step))
        self.note(f"{name}: iteration budget {change.budget_share} from now on ({change.why})")

    def _gap(self, cell: Cell) -> None:
        handle = self._cells.gap(cell)
        if handle is not None:  # no other cell of its batch still waits on the task
            self.runner.cancel(handle)
        self.summary.gaps += 1
        self._degraded(self.policy.on_gap(cell.level_id, cell.segment.index))

    def _check_deadlines(self) -> None:
        for cell in self._cells.overdue(self.clock()):
            level = self.settings.levels[cell.level_id].name
            self.note(f"{level} segment {cell.segment.index} missed its deadline: a gap")
            self._gap(cell)

    def _publish_ready(self) -> None:
        if self.publisher is None:
            return
        for cell in self._cells.publishable():
            for publication in self.publisher.publish(cell.level_id, cell.segment, cell.result):
                self.summary.publications.append(publication)
                self.report(publication)
            level = self.settings.levels[cell.level_id]
            segment = cell.segment.for_level(self.settings.channel, level, cell.level_id)
            shutil.rmtree(
                checkpoint_dir_for(self.settings.path / CHECKPOINT_DIR, segment),
                ignore_errors=True,
            )
