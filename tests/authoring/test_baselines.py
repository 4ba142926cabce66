"""`promptus eval` and its baselines (``authoring.baselines``): baselines at matched bitrates, the
table, the plot, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from authoring.baselines import VAEBaseline, classic_at, encode_classic, match_bitrate
from authoring.metrics import vmaf_missing
from promptus.cli import main

FPS = 10.0


def _clip(frames: int = 6, size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return np.stack([
        (np.stack([np.sin(6 * x + t / 3), np.cos(5 * y - t / 4), (x + y) / 2 - 0.5], -1) * 0.5 + 0.5) * 255
        for t in range(frames)
    ]).astype(np.uint8)  # fmt: skip


@pytest.mark.parametrize("codec", ["x264", "x265", "svt-av1"])
def test_classic_codecs_round_trip_and_rate_falls_with_crf(codec: str) -> None:
    frames = _clip()
    fine, coarse = encode_classic(codec, frames, FPS, 18), encode_classic(codec, frames, FPS, 45)
    assert fine.frames.shape == frames.shape
    assert fine.kbps > coarse.kbps > 0
    assert (
        np.abs(fine.frames.astype(int) - frames).mean()
        < np.abs(coarse.frames.astype(int) - frames).mean() + 1
    )


def test_match_bitrate_finds_the_closest_setting() -> None:
    from authoring.baselines import CodedClip

    rates = {crf: 1000.0 / (crf + 1) for crf in range(0, 52)}
    tried: list[int] = []

    def encode(crf: int) -> CodedClip:
        tried.append(crf)
        return CodedClip(
            "fake-rate-model", f"crf {crf}", rates[crf], np.zeros((1, 1, 1, 3), np.uint8)
        )

    assert match_bitrate(encode, 0, 51, 50.0).setting == "crf 19"
    assert len(tried) <= 7  # a binary search, not a sweep
    clip = classic_at("x264", _clip(), FPS, 40.0)
    assert 15 < clip.kbps < 100


def test_vae_baseline_stays_under_the_target_rate(taesd_dir: Path) -> None:
    from engines.taesd import load_taesd

    frames = _clip()
    vae = VAEBaseline(load_taesd(taesd_dir, need_encoder=True), frames, FPS)
    low, _ = vae.quantized(2, 5)
    high, _ = vae.quantized(8, 1)
    assert low < high
    clip = vae.at(high * 0.5, lambda f: -float(np.abs(f.astype(int) - frames).mean()))
    assert clip.kbps <= high * 0.55 and clip.frames.shape == frames.shape


@pytest.mark.slow
def test_eval_writes_table_json_and_plot(
    tmp_path: Path, taesd_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "frames"
    source.mkdir()
    for i, frame in enumerate(_clip(4)):
        Image.fromarray(frame).save(source / f"{i:05d}.png")
    ladder = tmp_path / "ladder"
    common = ["--generator", "tiny", "--device", "cpu", "--size", "64", "--quiet"]
    assert main(["ladder", str(source), "--out", str(ladder), *common, "--levels", "r1n3,r2n3",
                 "--iterations", "3,2", "--fps", str(FPS), "--chunk-seconds", "0.3", "--no-quality"]) == 0  # fmt: skip
    out = tmp_path / "eval"
    assert main(["eval", str(ladder), "--reference", str(source), "--out", str(out), "--device", "cpu",
                 "--taesd", str(taesd_dir), "--codecs", "x264,svt-av1", "--quiet"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| promptus | r1n3 |" in printed and "| x264 |" in printed and "| vae |" in printed
    report = (out / "rate_quality.md").read_text()
    assert "decoded by generator tiny" in report and "measure nothing" in report
    assert "n/a" not in report
    if vmaf_missing() is not None:  # no vmaf-torch: the column is left out, and why
        assert "VMAF: not measured" in report and "| VMAF |" not in report
    else:
        assert "| VMAF |" in report
    points = json.loads((out / "rate_quality.json").read_text())["points"]
    assert {p["method"] for p in points} == {
        "promptus",
        "x264",
        "svt-av1",
        "vae",
        "thumbnail",
        "start-latent",
    }
    assert (
        len(points) == 1 + 2 * 5
    )  # the start latent once; per level: promptus, 2 codecs, vae, thumbnail
    assert (out / "rate_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "rate_quality.md").read_text().startswith("# ladder")

    assert (
        main(
            [
                "eval",
                str(ladder),
                "--reference",
                str(tmp_path / "none"),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--reference", str(source), "--out", str(out)]) == 2
    assert "cannot read ladder" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                str(ladder),
                "--reference",
                str(source),
                "--out",
                str(out),
                "--codecs",
                "mpeg2",
            ]
        )
        == 2
    )
    assert "unknown codec" in capsys.readouterr().err
