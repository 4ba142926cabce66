"""`promptus emulate` end to end in fast mode on a few real traces, and its user errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from promptus.cli import main


@pytest.mark.slow  # matplotlib import and three plots: ~10 s on a busy 2-core machine
def test_fast_run_writes_tables_plots_and_report(traces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "emulate",
            "--traces",
            str(traces_dir),
            "--sources",
            "norway-hsdpa,puffer,ucc-5g",
            "--limit",
            "2",
            "--session-s",
            "40",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["abr"] for r in rows] == ["bba", "mpc", "throughput", "bola"]
    for row in rows:
        assert row["sessions"] == "6"
        for column in ("stall_ratio", "mean_quality_db", "quality_variation_db", "startup_s"):
            assert float(row[column]) >= 0.0
    with (out / "sessions.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 24
    for name in ("stall_vs_quality.png", "cdf.png", "timeline.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "synthetic" in report and "| bba | 6 |" in report and "sessions per minute" in report
    run = json.loads((out / "run.json").read_text())
    assert run["puffer_unit"] == "MBps" and run["sessions"] == 24


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--abr", "pensieve"], "unknown ABR 'pensieve'"),
        (["--session-s", "0"], "--session-s must be positive"),
        (["--sources", "nowhere"], "no traces from sources"),
        (["--ladder", "/nonexistent/ladder"], "cannot read"),
        (["--mode", "full"], "full mode needs a real ladder"),
    ],
)
def test_user_errors_are_one_line(
    traces_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    code = main(
        [
            "emulate",
            "--traces",
            str(traces_dir / "oboe"),
            "--limit",
            "1",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
            *extra,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_trace_dir_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulate", "--traces", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "no such trace file or directory" in capsys.readouterr().err
