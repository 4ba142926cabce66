"""`promptus invert` / `promptus ladder`: bad inputs exit with one line; a tiny run writes a ladder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prompts.ladder import Ladder
from promptus.cli import main


@pytest.fixture
def frames_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    y, x = np.mgrid[0:80, 0:96]
    for t in range(4):
        image = np.stack(
            [(x * 2 + t * 9) % 256, (y * 3) % 256, np.full_like(x, 60 * t)], -1
        ).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{t:05d}.png")
    return folder


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err, err


TINY = ["--generator", "tiny", "--device", "cpu", "--size", "64", "--quiet"]


def test_bad_inputs_exit_with_one_line(
    tmp_path: Path, frames_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    invert = ["invert", "--out", out, *TINY]
    _fails(capsys, [*invert, str(junk), "--rank", "2", "--interval", "2"], "cannot read video")
    _fails(
        capsys,
        [*invert, str(tmp_path / "missing"), "--rank", "2", "--interval", "2"],
        "does not exist",
    )
    _fails(capsys, [*invert, str(empty), "--rank", "2", "--interval", "2"], "it is empty")
    _fails(
        capsys,
        [*invert, str(frames_dir), "--rank", "0", "--interval", "2"],
        "--rank must be at least 1",
    )
    _fails(
        capsys,
        [*invert, str(frames_dir), "--rank", "2", "--interval", "0"],
        "--interval must be at least 1",
    )
    _fails(
        capsys,
        [*invert, str(frames_dir), "--rank", "2", "--interval", "9"],
        "longer than the video",
    )
    _fails(capsys, ["invert", str(frames_dir), "--out", out, "--generator", "tiny", "--device", "cpu",
                    "--size", "100", "--rank", "2", "--interval", "2"], "not a positive multiple of 64")  # fmt: skip
    with pytest.raises(SystemExit) as exited:  # argparse refuses an unknown --preset itself
        main([*invert, str(frames_dir), "--rank", "2", "--interval", "2", "--preset", "slow"])
    assert exited.value.code == 2 and "invalid choice: 'slow'" in capsys.readouterr().err
    _fails(
        capsys,
        [*invert, str(frames_dir), "--rank", "2", "--interval", "2", "--iterations", "5"],
        "--iterations",
    )
    _fails(
        capsys,
        [
            *invert,
            str(frames_dir),
            "--rank",
            "2",
            "--interval",
            "2",
            "--perceptual",
            "vgg:/nope.pth",
        ],
        "does not exist",
    )
    _fails(capsys, [*invert, str(frames_dir), "--rank", "2", "--interval", "2", "--preset", "paper"],
           "pass --perceptual vgg19:PATH")  # fmt: skip
    _fails(capsys, [*invert, str(frames_dir), "--rank", "2", "--interval", "2", "--preset", "paper",
                    "--perceptual", f"vgg19:{tmp_path / 'no-vgg19.pth'}"], "does not exist")  # fmt: skip
    _fails(
        capsys,
        ["ladder", str(frames_dir), "--out", out, *TINY, "--levels", "r2x10"],
        "not of the form",
    )
    _fails(
        capsys,
        [
            "ladder",
            str(frames_dir),
            "--out",
            out,
            *TINY,
            "--levels",
            "r2n2",
            "--chunk-seconds",
            "0",
        ],
        "must be positive",
    )
    _fails(capsys, [*invert, str(frames_dir), "--rank", "2", "--interval", "2", "--generator", "tiny-taesd",
                    "--taesd", str(tmp_path / "no-taesd")], "weights not found")  # fmt: skip
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_invert_writes_a_ladder_and_refuses_to_overwrite_it(
    tmp_path: Path, frames_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ladder"
    argv = ["invert", str(frames_dir), "--out", str(out), *TINY, "--rank", "1", "--interval", "3",
            "--iterations", "3,2", "--fps", "3", "--chunk-seconds", "1"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "r1n3:" in printed and "kbps" in printed
    ladder = Ladder(out)
    manifest = ladder.manifest
    assert (manifest.stream.frames, manifest.stream.width, manifest.stream.chunk_frames) == (
        4,
        64,
        3,
    )
    assert [lv.name for lv in manifest.levels] == ["r1n3"]
    assert manifest.chunk_count == 2 and all(c.psnr is not None for c in manifest.levels[0].chunks)
    assert ladder.init_state().shape == (1, 4, 8, 8)
    _fails(capsys, argv, "already holds a ladder")
    resized = [a if a != "64" else "128" for a in argv]
    _fails(capsys, [*resized, "--resume"], "holds a 64x64 ladder; this run makes 128x128 frames")
    assert main([*argv, "--resume"]) == 0  # a finished ladder resumes into the same result


_PROBE = """
import sys
from promptus.cli import main
status = main(["ladder", sys.argv[1], "--out", sys.argv[2]])
print(status, sorted(name for name in sys.modules if name == "torch"))
"""


def test_a_missing_source_is_refused_before_torch_loads(tmp_path: Path) -> None:
    import subprocess
    import sys

    missing = tmp_path / "no-such-clip.mp4"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(missing), str(tmp_path / "out")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "2 []", result
    assert result.stderr.strip() == f"promptus ladder: source {missing} does not exist"


def test_a_folder_of_videos_is_refused_saying_what_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "b.mp4").write_bytes(b"")
    (clips / "a.mkv").write_bytes(b"")
    (clips / "LICENSE.md").write_text("CC BY")
    (clips / "notes").mkdir()
    _fails(
        capsys,
        ["ladder", str(clips), "--out", str(tmp_path / "out"), *TINY],
        f"folder {clips} holds no frame images (.png, .jpg, .jpeg, .bmp, .webp): it holds "
        "2 video files (a.mkv, b.mp4) and 2 other entries (LICENSE.md, notes/); pass a video "
        f"itself as SOURCE: {clips / 'a.mkv'}",
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", ["single-process", "segments"])
def test_ladder_vmaf_puts_each_chunks_vmaf_in_the_manifest(
    tmp_path: Path, frames_dir: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("vmaf_torch", reason="vmaf-torch missing: pip install '.[vmaf]'")
    from authoring.metrics import quality
    from authoring.source import load_source
    from engines import load_generator

    out = tmp_path / "ladder"
    argv = ["ladder", str(frames_dir), "--out", str(out), *TINY, "--levels", "r1n2",
            "--iterations", "2,2", "--fps", "2", "--chunk-seconds", "1", "--vmaf"]  # fmt: skip
    if path == "segments":
        argv += ["--segment-seconds", "1"]
    assert main(argv) == 0
    ladder = Ladder(out)
    chunks = ladder.manifest.levels[0].chunks
    assert len(chunks) == 2 and all(0 <= c.vmaf <= 100 for c in chunks)
    # the chunk's own frames, decoded as a viewer joining there: the same score
    source = load_source(frames_dir, 64, fps=2).frames
    stream = load_generator("tiny", device="cpu").open_stream(
        width=64, height=64, init_latent=ladder.init_state()
    )
    from prompts.chunk import parse_chunk

    decoded = stream.decode_chunk(parse_chunk(ladder.chunk_bytes(0, 0)))
    assert quality(decoded, source[:2], "cpu")["vmaf"] == pytest.approx(chunks[0].vmaf, abs=0.01)
    _fails(capsys, [*argv, "--no-quality"], "--vmaf is part of the per-chunk quality")
