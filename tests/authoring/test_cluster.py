"""A catalogue on a real local Ray cluster of two workers (CPU, tiny generator).

Two short titles x two levels x two closed segments each. The ladders the cluster assembles are
byte-identical to the same segments fitted one after another in this process (same threads);
a worker killed (SIGKILL) in the middle of a segment is replaced, the task resumes from its last
keyframe checkpoint and the ladder is still identical; unreadable titles are reported with one
line while the good ones complete; a dead cluster address is refused with one line.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from authoring.build import FitOptions
from authoring.catalog import CatalogSettings, TitleJob, build_titles
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
    """pid -> task name of every Ray worker now running a segment fit ("ray::fit a/r1n5/0")."""
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


def test_worker_killed_mid_task_resumes_from_its_checkpoint(cluster, titles, sequential, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "a"
    killed: list[str] = []

    def kill_once_a_checkpoint_exists() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            checkpoints = {p.parent.parent.name for p in out.glob(".fit/segments/*/.fit/*")}
            for pid, name in _segment_workers().items():
                _, level, index = name.split("/")
                if f"{level}-{int(index):04d}" in checkpoints:  # mid-task: keyframes fitted
                    os.kill(pid, signal.SIGKILL)
                    killed.append(name)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_once_a_checkpoint_exists)
    watcher.start()
    (report,) = build_titles(
        [TitleJob("a", titles["a"], out)], SETTINGS, runner=cluster, loader=LOADER,
        resources=RESOURCES, progress=False,
    )  # fmt: skip
    watcher.join()
    assert killed, "no segment worker was caught mid-task"
    assert report.ok, report.error
    assert tree_bytes(out) == sequential["a"]


def test_batched_catalogue_on_two_workers_matches_one_process(cluster, titles, tmp_path):  # type: ignore[no-untyped-def]
    """Batches of three segments (of both titles and levels): the same batches, stacked the
    same way, on Ray (each title's frames resolved from the object store) as in this process."""
    import dataclasses

    import torch

    settings = dataclasses.replace(SETTINGS, segments_per_step=3)
    ladders = {}
    for where, runner in (("here", LocalRunner()), ("ray", cluster)):
        threads = torch.get_num_threads()
        try:
            reports = build_titles(
                [TitleJob(n, titles[n], tmp_path / where / n) for n in "ab"], settings,
                runner=runner, loader=LOADER, resources=RESOURCES, progress=False,
            )  # fmt: skip
        finally:
            torch.set_num_threads(threads)
        assert all(r.ok for r in reports), [r.error for r in reports]
        ladders[where] = {n: tree_bytes(tmp_path / where / n) for n in "ab"}
    assert ladders["ray"] == ladders["here"]
