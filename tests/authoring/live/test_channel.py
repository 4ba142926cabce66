"""The rolling fit of a live channel with the tiny generator on CPU: a paced frame-folder feed
becomes a live ladder; the window slides; a failed task is retried; a missed deadline becomes a
gap; a Ray worker killed mid-task is re-run and the ladder is complete (one level; and two
levels in batches, under a deadline: only cells that missed it become gaps); cells that wait
together are fitted in one batch."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authoring.build import FitOptions
from authoring.cluster import open_runner
from authoring.levels import LevelSpec
from authoring.live.channel import CHECKPOINT_DIR, LiveChannel, LiveSettings, LiveSummary
from authoring.live.feed import Feed, FeedOptions
from authoring.live.publisher import Publication
from authoring.presets import get_preset
from authoring.procedural_clip import render_clip
from authoring.runner import LocalRunner, TaskResources
from authoring.tasks import GeneratorSpec
from prompts.ladder import Ladder
from prompts.manifest import load_manifest

pytestmark = pytest.mark.slow

SIZE = 64
FPS = 10
CHUNK_FRAMES = 5
LEVELS = (LevelSpec(2, 5), LevelSpec(4, 5))


def settings(media: Path, **overrides: object) -> LiveSettings:
    options = FitOptions(preset=get_preset("demo").with_budgets(2, 1), perceptual="none")
    values: dict[str, object] = {
        "channel": "cam", "media": media, "levels": LEVELS, "options": options,
        "chunk_frames": CHUNK_FRAMES, **overrides,
    }  # fmt: skip
    return LiveSettings(**values)  # type: ignore[arg-type]


def run_channel(
    live: LiveSettings,
    frames: Path,
    runner_name: str = "none",
    note: Callable[[str], None] = lambda text: None,
    report: Callable[[Publication], None] = lambda publication: None,
) -> tuple[LiveChannel, LiveSummary]:
    feed = Feed(str(frames), FeedOptions(size=SIZE, fps=FPS))
    runner = open_runner(runner_name, local_cpus=2)
    try:
        channel = LiveChannel(
            live, runner=runner, loader=GeneratorSpec("tiny"), resources=TaskResources(cpus=1),
            fps=FPS, size=SIZE, note=note, report=report,
        )  # fmt: skip
        return channel, channel.run(iter(feed))
    finally:
        runner.close()


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("feed")
    render_clip(folder, 31, SIZE)  # 3.1 s at 10 fps: six segments of one 5-frame chunk
    return folder


def test_a_paced_feed_becomes_a_finished_live_ladder_with_a_sliding_window(
    tmp_path: Path, frames: Path
) -> None:
    live = settings(tmp_path, window_chunks=2)
    # a file where segment 1 of r2n5 checkpoints: its first attempt fails writing there
    blocker = live.path / CHECKPOINT_DIR / "r2n5-0001"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        if "failed" in text:
            blocker.unlink(missing_ok=True)  # the disk recovered: the retry can succeed

    _, summary = run_channel(live, frames, note=note)
    assert summary.retries == 1 and any("retrying" in n for n in notes), notes
    assert summary.gaps == 0
    manifest = summary.manifest
    assert manifest is not None and not manifest.stream.live
    assert manifest.chunk_count == 6 and manifest.stream.frames == 30  # frame 30 only closes
    assert (manifest.window_start, [lv.name for lv in manifest.levels]) == (4, ["r2n5", "r4n5"])
    assert [c.index for c in manifest.levels[1].chunks] == [4, 5]
    ladder = Ladder(live.path)
    assert load_manifest(live.path) == manifest
    files = sorted(p.name for p in (live.path / "r4n5").iterdir())
    assert files == ["00003.chunk", "00004.chunk", "00005.chunk"]  # 3 serves chunk 4's prefix
    assert ladder.chunk_path(0, 4).stat().st_size == manifest.levels[0].chunks[0].bytes
    # every chunk and level was reported with its latency, in order per level
    for level in ("r2n5", "r4n5"):
        published = [p for p in summary.publications if p.level == level]
        assert [p.chunk for p in published] == list(range(6))
        assert all(p.latency_s >= p.wait_s > 0 for p in published)
        assert all(p.psnr is not None for p in published)
    assert not (live.path / CHECKPOINT_DIR).exists()


def test_a_missed_deadline_becomes_a_gap_and_the_channel_goes_on(
    tmp_path: Path, frames: Path
) -> None:
    live = settings(tmp_path, levels=LEVELS[:1], max_latency_s=0.05)
    _, summary = run_channel(live, frames)
    manifest = summary.manifest
    assert manifest is not None and manifest.chunk_count == 6 and not manifest.stream.live
    gaps = [c.index for c in manifest.levels[0].chunks if c.gap]
    assert summary.gaps == len(gaps) >= 1
    assert all(not (live.path / "r2n5" / f"{i:05d}.chunk").exists() for i in gaps)
    assert summary.degraded and summary.degraded[0] == ("r2n5", 1)  # late: half the budget


def ray_fit_workers() -> dict[int, str]:
    """pid -> task name of the Ray workers running a live fit task now (Ray titles them
    ``ray::<task name>``: ``fit cam/r2n5/1``, or ``fit cam/r2n5/1 +1`` for a batch of two)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if command.startswith(b"ray::fit cam/"):
            found[int(entry.name)] = command.decode().removeprefix("ray::")
    return found


def test_a_killed_ray_worker_is_rerun_and_the_ladder_is_complete(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    frames = tmp_path / "feed"
    render_clip(frames, 16, SIZE)  # three segments
    options = FitOptions(preset=get_preset("demo").with_budgets(16, 8), perceptual="none")
    live = settings(tmp_path / "media", levels=LEVELS[:1], options=options, max_latency_s=600)
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 240
        while not killed and time.monotonic() < deadline:
            # a worker that wrote a keyframe checkpoint is mid-task: kill it there
            if any((live.path / CHECKPOINT_DIR).glob("r2n5-*/.fit/*.safetensors")):
                for pid in list(ray_fit_workers())[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    _, summary = run_channel(live, frames, runner_name="local")
    thread.join(timeout=5)
    assert killed, "no Ray fit worker was found mid-task"
    manifest = summary.manifest
    assert manifest is not None and manifest.chunk_count == 3
    assert summary.gaps == 0 and summary.retries == 0  # Ray re-ran the task, not the driver
    assert all(not c.gap for c in manifest.levels[0].chunks)


@pytest.mark.parametrize("max_latency_s", [60.0, 4.0], ids=["deadline-60s", "deadline-4s"])
def test_a_worker_killed_mid_batch_loses_nothing_but_cells_past_their_deadline(
    tmp_path: Path, max_latency_s: float
) -> None:
    """Node loss in miniature, live: two levels, cells in batches of up to two; one Ray worker
    is killed (SIGKILL) in the middle of a fit. The channel goes on publishing after the kill;
    every chunk of every level is published, as a chunk file or as a gap, and a gap only where
    a cell missed its deadline (the channel's one mark): none is lost to the kill itself (no
    failed task, no retry by the driver: Ray re-runs it from its checkpoint). With 60 s every
    cell made it here; with 4 s the re-run batch's cells (and others, late on two shared
    cores) became gaps while the rest were published."""
    pytest.importorskip("ray")
    frames = tmp_path / "feed"
    render_clip(frames, 21, SIZE)  # four segments
    options = FitOptions(preset=get_preset("demo").with_budgets(16, 8), perceptual="none")
    live = settings(
        tmp_path / "media", options=options, max_latency_s=max_latency_s, segments_per_step=2
    )
    killed: list[tuple[float, str]] = []
    published: list[tuple[float, Publication]] = []
    notes: list[str] = []

    def killer() -> None:
        deadline = time.monotonic() + 240
        while not killed and time.monotonic() < deadline:
            if any((live.path / CHECKPOINT_DIR).glob("*/.fit/*.safetensors")):  # mid-task
                for pid, name in list(ray_fit_workers().items())[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append((time.monotonic(), name))
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    _, summary = run_channel(
        live, frames, runner_name="local", note=notes.append,
        report=lambda publication: published.append((time.monotonic(), publication)),
    )  # fmt: skip
    thread.join(timeout=5)
    assert killed, "no Ray fit worker was found mid-task"
    killed_at, name = killed[0]
    assert any(at > killed_at for at, _ in published), "nothing was published after the kill"
    manifest = summary.manifest
    assert manifest is not None and manifest.chunk_count == 4
    missed = [n for n in notes if n.endswith("missed its deadline: a gap")]
    assert summary.retries == 0 and not [n for n in notes if "failed" in n], notes
    assert summary.gaps == len(missed), notes
    for level in manifest.levels:
        assert [c.index for c in level.chunks] == list(range(4))
        for chunk in level.chunks:
            path = live.path / level.name / f"{chunk.index:05d}.chunk"
            assert path.exists() != chunk.gap, (level.name, chunk.index, name)
    assert sum(c.gap for lv in manifest.levels for c in lv.chunks) == len(missed)
    for level in ("r2n5", "r4n5"):
        assert [p.chunk for _, p in published if p.level == level] == list(range(4))


class RecordingRunner(LocalRunner):
    """This process's runner, keeping the name of every task submitted."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def submit(
        self, fn: Any, *args: Any, name: str, resources: TaskResources, tag: Any = None
    ) -> Any:
        self.names.append(name)
        return super().submit(fn, *args, name=name, resources=resources, tag=tag)


def test_cells_that_wait_together_are_fitted_in_one_batch(tmp_path: Path, frames: Path) -> None:
    """An unpaced feed outruns the fits: the segments that wait for a busy worker (or for the
    generator) go out as batches of up to three cells of one level, and the ladder is whole."""
    live = settings(tmp_path, segments_per_step=3)
    runner = RecordingRunner()
    channel = LiveChannel(
        live, runner=runner, loader=GeneratorSpec("tiny"), resources=TaskResources(cpus=1),
        fps=FPS, size=SIZE,
    )  # fmt: skip
    summary = channel.run(iter(Feed(str(frames), FeedOptions(size=SIZE, fps=FPS, pace=False))))
    fits = [name for name in runner.names if name.startswith("fit ")]
    batched = [name for name in fits if " +" in name]
    assert batched, fits
    assert all(int(name.rsplit("+", 1)[1]) <= 2 for name in batched)  # at most 3 cells a task
    assert summary.gaps == 0 and summary.retries == 0
    manifest = summary.manifest
    assert manifest is not None and manifest.chunk_count == 6
    for level in ("r2n5", "r4n5"):
        published = [p for p in summary.publications if p.level == level]
        assert [p.chunk for p in published] == list(range(6))
        assert all(p.psnr is not None for p in published)
