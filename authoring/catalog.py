"""Ladders for many titles at once: batches of (title, level, segment) are tasks on a runner.

The driver (this module) reads each title, asks one task per title for its initial latent, then,
once every title is prepared, submits one task per batch of ``segments_per_step`` closed
segments that stack (same rank, interval and frame size, of any titles and levels; a batch's
segments are fitted in lockstep, ``authoring.segment_batch``), collects them as they complete (a
progress bar with ETA over every frame of every level of every title), and assembles each title's
ladder once its last segment is in: ``LadderWriter`` writes the init state and every chunk
atomically, the manifest last. A title that cannot be read, or whose task fails past its
retries, is reported with a one-line reason (a failed batch fails the titles it holds); the
other titles go on.

Checkpoints live in ``<ladder>/.fit/segments/`` (storage every node shares): a task killed midway
is re-run by the runner and continues from its last keyframe; ``resume`` keeps them across runs.
A title's frames reach the tasks through the runner's object store, or with ``shared_frames``
from ``<ladder>/.fit/frames.npy`` (the same shared storage): the driver writes the file once and
each task maps it and reads only its segments' frames (``authoring.tasks.FramesFile``).
"""

from __future__ import annotations

import shutil
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from authoring.build import FitOptions, check_source_fits
from authoring.levels import CHECKPOINT_DIR, LevelSpec
from authoring.runner import TaskResources, TaskRunner, first_line
from authoring.segment_batch import batch_size_for, stack_batches
from authoring.segments import (
    DEFAULT_SEGMENT_SECONDS,
    Segment,
    SegmentResult,
    cut_segments,
    segment_chunks_for,
)
from authoring.tasks import (
    FramesFile,
    GeneratorLoader,
    TaskOutput,
    TitleSetup,
    fit_segments_task,
    prepare_title,
)
from common.errors import UserError
from prompts.ladder import MANIFEST_NAME, LadderWriter
from prompts.manifest import Manifest, StreamInfo
from prompts.stream_model import CHUNK_RESET, NOISE_SEED, PREV_LATENT_WEIGHT

SEGMENTS_DIR = "segments"  # under the ladder's checkpoint directory
FRAMES_NAME = "frames.npy"  # a title's frames for the tasks, under the checkpoint directory


class TitleError(UserError, ValueError):
    """One title cannot be built (the message names it and says why)."""


@dataclass(frozen=True)
class TitleJob:
    """One title: its source and the ladder directory to write."""

    name: str
    source: Path
    out: Path


@dataclass(frozen=True)
class CatalogSettings:
    """What every title of one run shares."""

    levels: tuple[LevelSpec, ...]
    options: FitOptions
    size: int
    max_frames: int | None = None
    fps: float | None = None
    chunk_seconds: float = 2.0
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS  # <= 0: open levels (one segment each)
    resume: bool = False
    measure_quality: bool = True
    measure_vmaf: bool = False  # each chunk's VMAF too (authoring.metrics)
    segments_per_step: int | str = 1  # segments per batch task, or AUTO (by GPU memory)
    shared_frames: bool = False  # tasks read the frames from the ladder's .fit/ (module docstring)


@dataclass
class TitleReport:
    """How one title went: its ladder's levels, or the reason it failed."""

    name: str
    out: Path
    manifest: Manifest | None = None
    task_seconds: float = 0.0  # summed wall time of its tasks on their GPUs (or CPU slots)
    segments: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Title:
    """Driver-side state of one title while its tasks run."""

    job: TitleJob
    report: TitleReport
    frames: np.ndarray | None = None
    fps: float = 0.0
    chunk_frames: int = 0
    frames_ref: object = None
    setup: TitleSetup | None = None
    segments: list[Segment] = field(default_factory=list)
    results: dict[tuple[int, int], SegmentResult] = field(default_factory=dict)
    handles: list = field(default_factory=list)


def checkpoint_root(out: Path) -> Path:
    return out / CHECKPOINT_DIR / SEGMENTS_DIR


def _load_title(job: TitleJob, settings: CatalogSettings) -> _Title:
    """Read and check one title; TitleError naming it when it cannot be built."""
    from authoring.source import SourceError, load_source

    title = _Title(job, TitleReport(job.name, job.out))
    try:
        source = load_source(
            job.source, settings.size, max_frames=settings.max_frames, fps=settings.fps
        )
        title.chunk_frames = check_source_fits(source, settings.levels, settings.chunk_seconds)
    except (SourceError, ValueError) as error:
        raise TitleError(f"{job.name}: {error}") from None
    if (job.out / MANIFEST_NAME).exists() and not settings.resume:
        raise TitleError(
            f"{job.name}: {job.out} already holds a ladder; pass --resume to continue it or "
            "choose another --out"
        )
    title.frames, title.fps = source.frames, source.fps
    return title


def assemble_ladder(
    out: Path,
    setup: TitleSetup,
    *,
    fps: float,
    frames: np.ndarray,
    chunk_frames: int,
    levels: Sequence[LevelSpec],
    results: Sequence[SegmentResult],
) -> Manifest:
    """Write a title's ladder from its fitted segments: init state, chunks, the manifest last."""
    count, height, width = frames.shape[:3]
    stream = StreamInfo(
        fps=fps, width=width, height=height, frames=count, chunk_frames=chunk_frames,
        generator_id=setup.generator_id, generator_name=setup.generator_name, latent=setup.latent,
        noise_seed=NOISE_SEED, prev_latent_weight=PREV_LATENT_WEIGHT, prev_latent_rule=CHUNK_RESET,
    )  # fmt: skip
    by_chunk = {
        (result.segment.level_id, chunk.index): (chunk, scores)
        for result in results
        for chunk, scores in zip(result.chunks, result.quality, strict=True)
    }
    writer = LadderWriter(out, stream, [(lv.name, lv.rank, lv.interval) for lv in levels])
    writer.write_init_state(setup.init_latent)
    for index in range(stream.chunk_count):
        for level_id in range(len(levels)):
            chunk, scores = by_chunk[(level_id, index)]
            writer.append_chunk(level_id, chunk, scores)
    manifest = writer.finish()
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return manifest


def build_titles(
    jobs: Sequence[TitleJob],
    settings: CatalogSettings,
    *,
    runner: TaskRunner,
    loader: GeneratorLoader,
    resources: TaskResources,
    progress: bool = True,
) -> list[TitleReport]:
    """Build one ladder per job on ``runner``; a report per job, in the jobs' order."""
    from tqdm import tqdm

    titles: list[_Title] = []
    reports: list[TitleReport] = []
    for job in jobs:
        try:
            title = _load_title(job, settings)
        except TitleError as error:
            reports.append(TitleReport(job.name, job.out, error=str(error)))
            continue
        reports.append(title.report)
        titles.append(title)

    def fail(title: _Title, message: str) -> None:
        if not title.report.ok:
            return
        title.report.error = f"{title.job.name}: {message}"
        for handle in title.handles:  # the tasks no other title still waits on
            _, batch = handle.tag
            if batch is None or not any(t.report.ok for t in _titles_of(batch)):
                runner.cancel(handle)
        title.frames = None

    total = sum(len(t.frames) * len(settings.levels) for t in titles if t.frames is not None)
    with tqdm(
        total=total, desc="fit", unit="frame", disable=not progress, dynamic_ncols=True,
        postfix={"titles": f"0/{len(titles)}"},
    ) as bar:  # fmt: skip
        if progress:
            bar.write(f"{len(titles)} title(s) on {runner.description}")
        for title in titles:
            if not settings.resume:
                shutil.rmtree(checkpoint_root(title.job.out), ignore_errors=True)
            assert title.frames is not None
            title.frames_ref = (
                FramesFile.write(title.job.out / CHECKPOINT_DIR / FRAMES_NAME, title.frames)
                if settings.shared_frames
                else runner.put(title.frames)
            )
            title.handles.append(
                runner.submit(
                    prepare_title,
                    title.frames_ref,
                    loader,
                    resources,
                    name=f"prepare {title.job.name}",
                    resources=resources,
                    tag=(title, None),
                )  # fmt: skip
            )
        finished, preparing = 0, len(titles)
        for done in runner.as_completed():
            title, batch = done.handle.tag
            if batch is None:
                preparing -= 1
            if done.error is not None:
                where = batch[0][1].name if batch is not None else "preparing"
                for member in _titles_of(batch) if batch is not None else [title]:
                    fail(member, f"{where}: {first_line(done.error)}")
            else:
                for member in _on_done(title, batch, done.value, settings, resources, bar):
                    try:
                        _write_ladder(member, settings)
                    except (OSError, ValueError, UserError) as error:  # e.g. writing its ladder
                        fail(member, first_line(error))
            if batch is None and preparing == 0:  # every title's segments are known: batch them
                _submit_batches(titles, settings, runner, loader, resources)
            finished = sum(1 for t in titles if t.report.manifest is not None or not t.report.ok)
            bar.set_postfix(titles=f"{finished}/{len(titles)}", refresh=False)
    return reports


def _submit_batches(
    titles: Sequence[_Title],
    settings: CatalogSettings,
    runner: TaskRunner,
    loader: GeneratorLoader,
    resources: TaskResources,
) -> None:
    """One task per batch of segments that stack (same rank, interval and frame size), over
    every prepared title, in title, level and segment order (the same batches on any runner)."""
    pending = [(t, s) for t in titles if t.report.ok and t.setup is not None for s in t.segments]
    size = batch_size_for(settings.segments_per_step)

    def key(item: tuple[_Title, Segment]) -> Hashable:
        title, segment = item
        assert title.frames is not None
        return (segment.level.rank, segment.level.interval, title.frames.shape[1:3])

    for batch in stack_batches(pending, key, size):
        members = _titles_of(batch)
        first = batch[0][1]
        name = f"fit {first.name}" + (f" +{len(batch) - 1}" if len(batch) > 1 else "")
        handle = runner.submit(
            fit_segments_task,
            [s for _, s in batch],
            [members.index(t) for t, _ in batch],
            loader, settings.options,
            [t.setup.init_latent for t, _ in batch],  # type: ignore[union-attr]
            [checkpoint_root(t.job.out) for t, _ in batch],
            resources, settings.measure_quality, settings.measure_vmaf,
            settings.segments_per_step,
            *[t.frames_ref for t in members],
            name=name, resources=resources, tag=(batch[0][0], batch),
        )  # fmt: skip
        for title in members:
            title.handles.append(handle)


def _titles_of(batch: Sequence[tuple[_Title, Segment]]) -> list[_Title]:
    """The titles of a batch's segments, each once, in order."""
    return list({id(title): title for title, _ in batch}.values())


def _on_done(
    title: _Title,
    batch: list[tuple[_Title, Segment]] | None,
    output: TaskOutput,
    settings: CatalogSettings,
    resources: TaskResources,
    bar: object,
) -> list[_Title]:
    """A task that succeeded: a title's setup (None of its batch) or a batch of fitted segments;
    returns the titles whose ladder can now be written."""
    if batch is None:
        if title.report.ok:
            _on_prepared(title, output, settings, resources)
        return []
    return _on_fitted(batch, output, resources, bar)


def _on_prepared(
    title: _Title, output: TaskOutput, settings: CatalogSettings, resources: TaskResources
) -> None:
    """A title's setup is in: cut its segments."""
    title.report.task_seconds += output.seconds * max(resources.gpus, 1)
    title.setup = output.value
    assert title.frames is not None
    step = segment_chunks_for(settings.segment_seconds, title.fps, title.chunk_frames)
    title.segments = cut_segments(
        title.job.name, len(title.frames), title.chunk_frames, settings.levels, step
    )
    title.report.segments = len(title.segments)


def _on_fitted(
    batch: list[tuple[_Title, Segment]],
    output: TaskOutput,
    resources: TaskResources,
    bar: object,
) -> list[_Title]:
    """A batch of fitted segments is in: keep each result (the task's time shared out evenly);
    returns the titles that now have every segment."""
    results: list[SegmentResult] = output.value
    share = output.seconds * max(resources.gpus, 1) / len(batch)
    for (member, segment), result in zip(batch, results, strict=True):
        member.report.task_seconds += share
        if member.report.ok:
            member.results[(segment.level_id, segment.index)] = result
            bar.update(segment.frame_count)  # type: ignore[attr-defined]
    return [
        member for member in _titles_of(batch)
        if member.report.ok and len(member.results) == len(member.segments)
    ]  # fmt: skip


def _write_ladder(title: _Title, settings: CatalogSettings) -> None:
    """Every segment of the title is in: write its ladder."""
    assert title.setup is not None and title.frames is not None
    title.report.manifest = assemble_ladder(
        title.job.out, title.setup, fps=title.fps, frames=title.frames,
        chunk_frames=title.chunk_frames, levels=settings.levels,
        results=list(title.results.values()),
    )  # fmt: skip
    title.frames = None
