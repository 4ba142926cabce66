"""`promptus generate`: real ladder on disk -> real H.264 MP4 decoded by PyAV, scores, refusals."""

from __future__ import annotations

import csv
import re
import warnings

import av
import numpy as np
import pytest
from PIL import Image

from prompts.ladder import LadderWriter
from prompts.manifest import StreamInfo
from prompts.testing import level_chunks
from promptus.cli import main
from tests.engines.conftest import TEST_SIZE, init_latent

FRAMES = 13
INTERVAL = 4
CHUNK_FRAMES = 8


def write_ladder(path, generator_id: str, rule: str = "chunk-reset") -> None:
    stream = StreamInfo(
        fps=30.0,
        width=TEST_SIZE,
        height=TEST_SIZE,
        frames=FRAMES,
        chunk_frames=CHUNK_FRAMES,
        generator_id=generator_id,
        generator_name="tiny",
        prev_latent_rule=rule,
    )
    writer = LadderWriter(path, stream, [("r2n4", 2, INTERVAL)])
    writer.write_init_state(init_latent())
    for chunk in level_chunks(
        generator_id, frames=FRAMES, interval=INTERVAL, chunk_frames=CHUNK_FRAMES
    ):
        writer.append_chunk(0, chunk)
    writer.finish()


def decoded_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("rule", ["chunk-reset", "chained"])
def test_generate_writes_a_playable_mp4(tmp_path, tiny_generator, rule, capsys):
    write_ladder(tmp_path / "ladder", tiny_generator.generator_id, rule)
    out = tmp_path / "video.mp4"
    assert (
        main(
            [
                "generate",
                str(tmp_path / "ladder"),
                "--level",
                "r2n4",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    frames = decoded_frames(out)
    assert len(frames) == FRAMES and frames[0].shape == (TEST_SIZE, TEST_SIZE, 3)
    assert "wrote" in capsys.readouterr().out


def test_generate_scores_against_reference(tmp_path, tiny_generator, capsys):
    write_ladder(tmp_path / "ladder", tiny_generator.generator_id)
    reference = tmp_path / "frames"
    reference.mkdir()
    rng = np.random.RandomState(3)
    for index in range(FRAMES):
        Image.fromarray(rng.randint(0, 255, (TEST_SIZE, TEST_SIZE, 3), dtype=np.uint8)).save(
            reference / f"{index:05d}.png"
        )
    out, table = tmp_path / "video.mp4", tmp_path / "scores.csv"
    code = main(
        [
            "generate",
            str(tmp_path / "ladder"),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--reference",
            str(reference),
            "--csv",
            str(table),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean" in printed and "worst" in printed and "psnr_db" in printed
    frame_row = re.compile(r"^\s*\d+\s+[\d.]+\s+-?[\d.]+$", re.MULTILINE)
    assert not frame_row.findall(printed)  # a summary by default, not one row per frame
    assert main(["generate", str(tmp_path / "ladder"), "--out", str(out), "--device", "cpu",
                 "--reference", str(reference), "--per-frame"]) == 0  # fmt: skip
    assert len(frame_row.findall(capsys.readouterr().out)) == FRAMES
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert (
        len(rows) == FRAMES
        and 0 < float(rows[0]["psnr_db"]) < 100
        and -1 <= float(rows[0]["ssim"]) <= 1
    )


def test_generate_refuses_other_generator_unless_allowed(tmp_path, capsys):
    write_ladder(tmp_path / "ladder", "sd-turbo:0123456789abcdef")
    out = tmp_path / "video.mp4"
    command = ["generate", str(tmp_path / "ladder"), "--out", str(out), "--device", "cpu"]
    assert main([*command, "--generator", "tiny"]) == 2
    assert "sd-turbo:0123456789abcdef" in capsys.readouterr().err and not out.exists()
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        assert main([*command, "--generator", "tiny", "--allow-generator-mismatch"]) == 0
    assert not raised, [str(w.message) for w in raised]  # no Python warning beside our line
    err = capsys.readouterr().err
    assert err.count("sd-turbo:0123456789abcdef") == 1
    assert err.count("warning: decoding prompts fitted for sd-turbo:0123456789abcdef") == 1
    assert len(decoded_frames(out)) == FRAMES


def test_generate_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing"), "--out", str(tmp_path / "v.mp4")]) == 2
    assert "cannot read ladder" in capsys.readouterr().err
    write_ladder(tmp_path / "ladder", "tiny:whatever")
    assert (
        main(
            [
                "generate",
                str(tmp_path / "ladder"),
                "--out",
                str(tmp_path / "v.mp4"),
                "--generator",
                "tiny-taesd",
                "--taesd",
                str(tmp_path / "none"),
            ]
        )
        == 2
    )
    assert "madebyollin/taesd" in capsys.readouterr().err
    assert (
        main(
            [
                "generate",
                str(tmp_path / "ladder"),
                "--out",
                str(tmp_path / "v.mp4"),
                "--csv",
                "x.csv",
            ]
        )
        == 2
    )
    command = ["generate", str(tmp_path / "ladder"), "--out", str(tmp_path / "v.mp4")]
    assert main([*command, "--per-frame"]) == 2
    assert "--per-frame needs --reference" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_legacy_sky_ladder(tmp_path, legacy_prompts_dir, capsys):
    assert main(["import-legacy", str(legacy_prompts_dir), "--out", str(tmp_path / "sky")]) == 0
    out = tmp_path / "sky.mp4"
    command = ["generate", str(tmp_path / "sky"), "--out", str(out), "--device", "cpu"]
    assert main([*command, "--generator", "tiny", "--allow-generator-mismatch"]) == 0
    assert capsys.readouterr().err.count("warning:") == 1
    frames = decoded_frames(out)
    assert len(frames) == 141 and frames[0].shape == (512, 512, 3)
