"""What the simulator reads from a ladder: real manifests, the demo ladder, the synthetic ladder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emulation.ladder import (
    SYNTHETIC_NAME,
    default_ladder,
    load_ladder,
    ssim_to_db,
    synthetic_ladder,
)
from prompts.manifest import ManifestError
from promptus.commands.demo import DEMO_GENERATOR, demo_ladder_dir
from tests.emulation.ladder_factory import CHUNK_FRAMES, FPS, LEVELS, build_ladder


def rewrite_quality(path: Path, **quality: float | None) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    for level in manifest["levels"]:
        for chunk in level["chunks"]:
            chunk.update(quality)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_real_ladder_sizes_and_psnr(tmp_path: Path) -> None:
    ladder = load_ladder(build_ladder(tmp_path / "lad", "tiny:0", chunks=4))
    manifest = json.loads((tmp_path / "lad" / "manifest.json").read_text())
    assert ladder.level_names == tuple(name for name, *_ in LEVELS)
    assert ladder.sizes_bytes.tolist() == [
        [c["bytes"] for c in lv["chunks"]] for lv in manifest["levels"]
    ]
    assert ladder.keyframes[:, 1].tolist() == [
        CHUNK_FRAMES // interval for _, _, interval, _ in LEVELS
    ]
    assert ladder.quality_metric == "psnr_db" and ladder.ssim is None
    assert ladder.quality_db[:, 0].tolist() == [psnr for *_, psnr in LEVELS]
    assert ladder.chunk_s.tolist() == [CHUNK_FRAMES / FPS] * 4
    assert np.all(ladder.prefix_bytes * ladder.keyframes >= ladder.sizes_bytes)


def test_ssim_wins_over_psnr_and_missing_quality_is_refused(tmp_path: Path) -> None:
    path = build_ladder(tmp_path / "lad", "tiny:0", chunks=2)
    rewrite_quality(path, ssim=0.95)
    ladder = load_ladder(path)
    assert ladder.quality_metric == "ssim_db"
    assert ladder.quality_db[0, 0] == pytest.approx(-10 * np.log10(0.05))
    rewrite_quality(path, ssim=None, psnr=None)
    with pytest.raises(ManifestError, match="lack a measured quality"):
        load_ladder(path)


def test_ssim_db_is_clamped_like_puffer() -> None:
    assert ssim_to_db(np.array([1.0, 0.0, -0.5])).tolist() == [60.0, 0.0, 0.0]


def test_default_is_the_demo_ladder_when_promptus_demo_built_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # the folder `promptus demo` writes (demo-data/<generator>/media/demo) is the one looked at
    path = demo_ladder_dir()
    assert path == Path("demo-data") / DEMO_GENERATOR / "media" / "demo"
    ladder, note = default_ladder(path)
    assert ladder.synthetic and ladder.name == SYNTHETIC_NAME and "run `promptus demo` once" in note
    build_ladder(path, "tiny:0", chunks=3)
    ladder, note = default_ladder(path)
    assert not ladder.synthetic and ladder.chunks == 3 and note.startswith("demo ladder")
    rewrite_quality(path, psnr=None)
    ladder, note = default_ladder(path)
    assert ladder.synthetic and "unusable" in note


def test_synthetic_ladder_follows_the_prompt_byte_formula() -> None:
    ladder = synthetic_ladder(seed=3)
    again = synthetic_ladder(seed=3)
    assert np.array_equal(ladder.sizes_bytes, again.sizes_bytes)
    nominal = ladder.keyframes[:, 0] * ((77 + 1024) * np.array([1, 2, 4, 8, 16, 32]) + 16)
    assert np.allclose(ladder.sizes_bytes.mean(axis=1), nominal, rtol=0.03)
    assert np.all(np.diff(ladder.kbps) > 0)
