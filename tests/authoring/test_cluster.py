"""A catalogue on a real local Ray cluster of two workers (CPU, tiny generator).

Two short titles x two levels x two closed segments each. The ladders the cluster assembles are
byte-identical to the same segments fitted one after another in this process (same threads);
a worker killed (SIGKILL) in the middle of a segment is replaced, the task resumes from its last
keyframe checkpoint and the ladder is still identical; unreadable titles are reported with one
line while the good ones complete; a dead cluster address is refused with one line. Batches of
three stacked segments give the in-process bytes on Ray, with the frames through the object
store or read by each task from the ladder's folder (shared storage); a worker killed in the
middle of a stacked batch loses nothing either.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from authoring.build import FitOptions
from authoring.catalog import FRAMES_NAME, CatalogSettings, TitleJob, build_titles
from authoring.cluster import open_runner
from authoring.levels import parse_levels
from authoring.presets import get_preset
from authoring.runner import LocalRunner, TaskResources
from authoring.tasks import GeneratorSpec
from promptus.cli import main
from tests.authoring.titles import FPS, SIZE, tree_bytes, write_title

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SETTINGS = CatalogSettings(
    levels=tuple(parse_levels("r1n5,r2n5")),
    options=FitOptions(preset=get_preset("demo").with_budgets(4, 2)),
    size=SIZE, fps=FPS, chunk_seconds=1.0, segment_seconds=1.0,
)  # fmt: skip
RESOURCES = TaskResources(cpus=1)
LOADER = GeneratorSpec("tiny")


@pytest.fixture(scope="module")
def titles(tiny_generator, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("titles")
    good = {name: write_title(tiny_generator, root / name, seed=i) for i, name in enumerate("ab")}
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "0000.png").write_bytes(b"not a png")
    return {**good, "missing": root / "missing", "corrupt": corrupt}


@pytest.fixture(scope="module")
def sequential(titles, tmp_path_factory) -> dict[str, dict[str, bytes]]:  # type: ignore[no-untyped-def]
    """The good titles' segments fitted one after another in this process."""
    import torch

    out = tmp_path_factory.mktemp("sequential")
    threads = torch.get_num_threads()
    try:
        reports = build_titles(
            [TitleJob(n, titles[n], out / n) for n in "ab"], SETTINGS, runner=LocalRunner(),
            loader=LOADER, resources=RESOURCES, progress=False,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert all(r.ok for r in reports)
    return {n: tree_bytes(out / n) for n in "ab"}


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    runner = open_runner("local", local_cpus=2)
    yield runner
    runner.close()


# The two tests below read the command's stderr: they come before the module's Ray cluster
# starts, whose workers' log lines reach this process's stderr whenever they arrive.
def test_dead_cluster_address_is_one_line(titles, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["catalog", str(titles["a"]), "--out", str(tmp_path), "--generator", "tiny",
            "--size", "64", "--quiet", "--cluster", f"ray://127.0.0.1:{port}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        f"promptus catalog: cannot reach the Ray cluster at ray://127.0.0.1:{port}: Connection refused"
    ]
    assert main([*argv[:-1], "nowhere"]) == 2
    assert "expected none, local, auto or ray://HOST:PORT" in capsys.readouterr().err


def test_catalog_command_prints_the_summary_and_names_failures(titles, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["catalog", str(titles["a"]), str(titles["missing"]), "--out", str(tmp_path),
            "--generator", "tiny", "--size", "64", "--fps", "10", "--chunk-seconds", "1",
            "--segment-seconds", "1", "--levels", "r1n5", "--preset", "demo",
            "--iterations", "2,1", "--threads", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split() == ["title", "levels", "kbps", "PSNR", "dB", "GPU-s", "status"]
    assert lines[1].split()[:2] == ["a", "1"] and lines[1].endswith("ok (2 segments)")
    assert lines[2].split()[0] == "missing" and lines[2].endswith("failed")
    assert err.strip().splitlines() == [
        f"promptus catalog: missing: source {titles['missing']} does not exist"
    ]
    assert (tmp_path / "a" / "manifest.json").exists()


def test_catalogue_on_two_workers_matches_one_process(cluster, titles, sequential, tmp_path):  # type: ignore[no-untyped-def]
    assert cluster.cpus == 2 and cluster.gpus == 0
    jobs = [TitleJob(n, titles[n], tmp_path / n) for n in ("a", "missing", "b", "corrupt")]
    reports = build_titles(
        jobs, SETTINGS, runner=cluster, loader=LOADER, resources=RESOURCES, progress=False
    )
    by_name = {r.name: r for r in reports}
    for name in "ab":
        report = by_name[name]
        assert report.ok, report.error
        assert report.segments == 4 and report.task_seconds > 0  # 2 levels x 2 segments
        assert [len(level.chunks) for level in report.manifest.levels] == [2, 2]
        assert tree_bytes(tmp_path / name) == sequential[name]
    # Bad titles: one line naming each; the good titles completed all the same.
    assert by_name["missing"].error == f"missing: source {titles['missing']} does not exist"
    assert by_name["corrupt"].error.startswith("corrupt: cannot read frame")
    assert all("\n" not in r.error for r in reports if not r.ok)
    assert not (tmp_path / "missing").exists()


def _segment_workers() -> dict[int, str]:
    """pid -> task name of every Ray worker now running a segment fit ("ray::fit a/r1n5/0", or
    "ray::fit a/r1n5/0 +2" for a batch of three)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if title.startswith("ray::fit "):
            found[int(entry.name)] = title.removeprefix("ray::fit ")
    return found


def _kill_mid_task(outs: list[Path], killed: list[str], *, batch: bool = False) -> threading.Thread:
    """A started thread that kills (SIGKILL) the first segment worker (of a batch of several
    segments, with ``batch``) whose task's first segment has a keyframe checkpoint under one of
    the ladders ``outs`` (mid-task), noting its name."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            checkpoints = {
                (out.name, p.parent.parent.name)
                for out in outs
                for p in out.glob(".fit/segments/*/.fit/*")
            }
            for pid, name in _segment_workers().items():
                if batch and " +" not in name:
                    continue
                title, level, index = name.split(" ")[0].split("/")
                if (title, f"{level}-{int(index):04d}") in checkpoints:  # keyframes fitted
                    os.kill(pid, signal.SIGKILL)
                    killed.append(name)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    return watcher


def test_worker_killed_mid_task_resumes_from_its_checkpoint(cluster, titles, sequential, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "a"
    killed: list[str] = []
    watcher = _kill_mid_task([out], killed)
    (report,) = build_titles(
        [TitleJob("a", titles["a"], out)], SETTINGS, runner=cluster, loader=LOADER,
        resources=RESOURCES, progress=False,
    )  # fmt: skip
    watcher.join()
    assert killed, "no segment worker was caught mid-task"
    assert report.ok, report.error
    assert tree_bytes(out) == sequential["a"]


BATCHED = dataclasses.replace(SETTINGS, segments_per_step=3)


def _build(runner, settings, titles, root):  # type: ignore[no-untyped-def]
    """Both good titles' ladders under ``root`` on ``runner`` (torch's threads kept)."""
    import torch

    threads = torch.get_num_threads()
    try:
        reports = build_titles(
            [TitleJob(n, titles[n], root / n) for n in "ab"], settings, runner=runner,
            loader=LOADER, resources=RESOURCES, progress=False,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert all(r.ok for r in reports), [r.error for r in reports]
    return reports


@pytest.fixture(scope="module")
def batched(titles, tmp_path_factory) -> dict[str, dict[str, bytes]]:  # type: ignore[no-untyped-def]
    """Both titles in batches of three segments (of both titles), fitted in this process."""
    out = tmp_path_factory.mktemp("batched")
    _build(LocalRunner(), BATCHED, titles, out)
    return {n: tree_bytes(out / n) for n in "ab"}


def test_batched_catalogue_on_two_workers_matches_one_process(
    cluster, titles, batched, tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    """Batches of three segments (of both titles and levels): the same batches, stacked the
    same way, on Ray as in this process: each title's frames resolved from the object store,
    or read by each task from ``<ladder>/.fit/frames.npy`` (nothing put in the object store)."""
    _build(cluster, BATCHED, titles, tmp_path / "store")
    assert {n: tree_bytes(tmp_path / "store" / n) for n in "ab"} == batched

    def no_object_store(value):  # type: ignore[no-untyped-def]
        raise AssertionError("the frames went through the object store")

    monkeypatch.setattr(cluster, "put", no_object_store)
    shared = dataclasses.replace(BATCHED, shared_frames=True)
    _build(cluster, shared, titles, tmp_path / "shared")
    assert {n: tree_bytes(tmp_path / "shared" / n) for n in "ab"} == batched
    assert not list((tmp_path / "shared").glob(f"*/.fit/{FRAMES_NAME}"))  # removed with .fit


def test_worker_killed_mid_batch_loses_nothing(cluster, titles, batched, tmp_path):  # type: ignore[no-untyped-def]
    """A worker killed (SIGKILL) in the middle of a batch of three stacked segments (frames
    from shared storage): Ray re-runs the batch, its segments resume from their checkpoints,
    and both ladders are complete: the same files, the same init state, and chunk PSNR within
    stacking's rounding of the run without a kill (a resumed batch may stack other keyframes
    together: ``authoring.segment_batch``)."""
    from prompts.manifest import Manifest, load_manifest

    killed: list[str] = []
    watcher = _kill_mid_task([tmp_path / n for n in "ab"], killed, batch=True)
    shared = dataclasses.replace(BATCHED, shared_frames=True)
    reports = _build(cluster, shared, titles, tmp_path)
    watcher.join()
    assert killed and " +" in killed[0], killed  # a stacked batch was caught mid-task
    for report in reports:
        name = report.name
        files = tree_bytes(tmp_path / name)
        assert sorted(files) == sorted(batched[name])
        assert files["init.bin"] == batched[name]["init.bin"]
        want = Manifest.from_json(json.loads(batched[name]["manifest.json"]))
        got = load_manifest(tmp_path / name)
        for level, reference in zip(got.levels, want.levels, strict=True):
            assert [c.index for c in level.chunks] == [c.index for c in reference.chunks]
            for chunk, ref in zip(level.chunks, reference.chunks, strict=True):
                assert abs(chunk.psnr - ref.psnr) < 1.0, (name, level.name, chunk.index)
