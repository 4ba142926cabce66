"""``promptus eval``: the report warns about generators with seeded random weights, and only
those; its VMAF column (vmaf-torch) sits next to PSNR and SSIM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines.variants import VARIANTS
from promptus.cli import main
from promptus.commands.eval import seeded_weights_note


def test_only_seeded_generators_get_the_meaningless_figures_note() -> None:
    warned = {name for name in VARIANTS if seeded_weights_note(name) is not None}
    # nano needs no --weights either, but its weights are trained and ship with the project
    assert warned == {"tiny", "tiny-taesd"}
    note = seeded_weights_note("tiny")
    assert note is not None and "measure nothing" in note and "(tiny)" in note


@pytest.mark.slow
def test_eval_has_a_vmaf_column_next_to_psnr_and_ssim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("vmaf_torch", reason="vmaf-torch missing: pip install '.[vmaf]'")
    y, x = np.mgrid[0:64, 0:64]
    source = tmp_path / "frames"
    source.mkdir()
    for t in range(4):
        frame = np.stack([(x * 3 + t * 8) % 256, (y * 3) % 256, np.full_like(x, 70)], -1)
        Image.fromarray(frame.astype(np.uint8)).save(source / f"{t:05d}.png")
    ladder, out = tmp_path / "ladder", tmp_path / "eval"
    assert main(["ladder", str(source), "--out", str(ladder), "--generator", "tiny", "--device", "cpu",
                 "--size", "64", "--levels", "r1n3", "--iterations", "2,2", "--chunk-seconds", "0.3",
                 "--fps", "10", "--no-quality", "--quiet"]) == 0  # fmt: skip
    argv = ["eval", str(ladder), "--reference", str(source), "--out", str(out), "--codecs", "x264"]
    assert main([*argv, "--device", "cpu", "--quiet"]) == 0
    report = (out / "rate_quality.md").read_text()
    assert "| method | setting | kbps | PSNR dB | SSIM | VMAF |" in report
    points = json.loads((out / "rate_quality.json").read_text())["points"]
    assert {p["method"] for p in points} == {"promptus", "x264", "thumbnail", "start-latent"}
    assert all(0 <= p["vmaf"] <= 100 and p["psnr"] > 0 for p in points)
    promptus, x264 = (next(p for p in points if p["method"] == m) for m in ("promptus", "x264"))
    assert x264["vmaf"] > promptus["vmaf"]  # x264 at the tiny generator's bitrate vs random weights
    capsys.readouterr()
    assert main([*argv, "--device", "cpu", "--quiet", "--no-vmaf"]) == 0
    report = (out / "rate_quality.md").read_text()
    assert "VMAF: not measured, so the table has no VMAF column: --no-vmaf was given." in report
    assert "| VMAF |" not in report
