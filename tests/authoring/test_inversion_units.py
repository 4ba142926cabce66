"""Pure parts of the inversion package: geometry, losses, metrics, levels, presets, sources."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from authoring.build import FitOptions, fingerprint
from authoring.fit import LevelConfig
from authoring.levels import LevelSpec, chunk_frames_for, parse_levels
from authoring.losses import (
    FitLoss,
    LossWeights,
    VGGFeatureLoss,
    ms_ssim,
    ms_ssim_scales,
    perceptual_term,
)
from authoring.metrics import psnr_per_frame, quality, ssim_per_frame
from authoring.plan import keyframe_spans
from authoring.presets import get_preset
from authoring.source import SourceError, SourceVideo, load_source

torch.set_num_threads(1)


def test_spans_follow_the_stream_model() -> None:
    spans = keyframe_spans(frames=25, interval=10, chunk_frames=20)
    assert [(s.start, s.end) for s in spans] == [(0, 0), (0, 10), (10, 20), (20, 24)]
    assert spans[0].frames == [0] and spans[0].weights == [1.0]
    assert spans[1].frames == list(range(1, 11))
    assert spans[1].weights[0] == pytest.approx(0.1) and spans[1].weights[-1] == 1.0
    # frame 20 starts chunk 1 (previous latent = init latent); frames 10 and 24 do not
    assert [s.end_starts_chunk for s in spans] == [True, False, True, False]
    assert spans[3].weights == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    ("frames", "interval", "chunk", "message"),
    [
        (0, 10, 10, "no frames"),
        (10, 10, 10, "longer than the video"),
        (30, 0, 10, "at least 1"),
        (30, 4, 10, "not a multiple"),
    ],
)
def test_bad_geometry_is_refused(frames: int, interval: int, chunk: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        keyframe_spans(frames, interval, chunk)


def test_levels_parse_sort_and_chunk_length() -> None:
    levels = parse_levels("r8n10,r2n10, r16n5")
    assert [lv.name for lv in levels] == ["r2n10", "r8n10", "r16n5"]
    assert chunk_frames_for(levels, fps=30, seconds=2) == 60
    assert chunk_frames_for([LevelSpec(1, 7)], fps=30, seconds=2) == 63
    assert chunk_frames_for([LevelSpec(1, 10)], fps=30, seconds=0.1) == 10
    for bad, message in [
        ("r0n10", "rank"),
        ("r2n0", "interval"),
        ("x2n3", "form"),
        ("r2n10,r2n10", "twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_levels(bad)


def test_presets() -> None:
    assert get_preset("reference").first_iterations == 10000
    assert get_preset("reference").later_iterations == 1500
    assert get_preset("fast").with_target(30.0).target_psnr == 30.0
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("slow")


def test_ms_ssim_identity_and_order() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    assert ms_ssim(x, x) == pytest.approx(torch.ones(2), abs=1e-5)
    slight = (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    heavy = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert (ms_ssim(x, slight) > ms_ssim(x, heavy)).all()
    assert (
        ms_ssim_scales(64, 64) == 3
        and ms_ssim_scales(512, 512) == 5
        and ms_ssim_scales(16, 16) == 1
    )


def test_fit_loss_is_per_frame_and_weighted() -> None:
    image = torch.zeros(2, 3, 64, 64)
    target = torch.zeros(2, 3, 64, 64)
    target[1] = 0.5
    context = torch.ones(2, 77, 1024)
    loss = FitLoss(perceptual_term("none"), LossWeights(mse=0.8, perceptual=0.2, context_l1=0.1))
    values = loss(image, target, context)
    assert values.tolist() == pytest.approx([0.1, 0.8 * 0.25 + 0.1])
    with_ssim = FitLoss(perceptual_term("ms-ssim"), LossWeights())(image, target, context)
    assert with_ssim[0] == pytest.approx(0.1, abs=1e-5) and with_ssim[1] > values[1]


def test_vgg_term_loads_a_user_weights_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    shapes = {
        0: (64, 3),
        2: (64, 64),
        5: (128, 64),
        7: (128, 128),
        10: (256, 128),
        12: (256, 256),
        14: (256, 256),
    }
    gen = torch.Generator().manual_seed(1)
    state = {}
    for index, (cout, cin) in shapes.items():
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(cout)
    path = tmp_path / "vgg16.safetensors"
    save_file(state, str(path))
    term = perceptual_term(f"vgg:{path}")
    assert isinstance(term, VGGFeatureLoss)
    a = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    assert float(term(a, a)[0]) == 0.0
    assert float(term(a, -a)[0]) > 0.0
    del state["features.14.bias"]
    save_file(state, str(path))
    with pytest.raises(ValueError, match="lacks features.14.bias"):
        perceptual_term(f"vgg:{path}")
    with pytest.raises(ValueError, match="does not exist"):
        perceptual_term(f"vgg:{tmp_path / 'missing.pth'}")


def test_metrics() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[1] = np.clip(b[1].astype(int) + 5, 0, 255)
    psnr = psnr_per_frame(b, a)
    assert psnr[0] == 100.0 and 30 < psnr[1] < 36
    ssim = ssim_per_frame(b, a)
    assert ssim[0] == pytest.approx(1.0) and ssim[1] < 1.0
    assert set(quality(b, a)) == {"psnr", "ssim"}
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_per_frame(a[:2], a)


def test_source_folder_crop_resize_and_errors(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((96, 128, 3), i * 40, np.uint8)).save(folder / f"{i:03d}.png")
    source = load_source(folder, 64)
    assert source.frames.shape == (3, 64, 64, 3) and source.fps == 30.0
    assert load_source(folder, 64, max_frames=2).frames.shape[0] == 2
    assert len(source.digest()) == 64
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="holds no frame images"):
        load_source(empty, 64)
    with pytest.raises(SourceError, match="multiple of 64"):
        load_source(folder, 100)
    with pytest.raises(SourceError, match="does not exist"):
        load_source(tmp_path / "nothing", 64)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="cannot read video"):
        load_source(junk, 64)


def test_source_video_file(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(
                np.full((128, 160, 3), 50 * i, np.uint8), format="rgb24"
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    source = load_source(path, 64)
    assert source.frames.shape == (5, 64, 64, 3)
    assert source.fps == 25.0


def test_fingerprint_tells_apart_fits_with_and_without_the_prompt_encoder() -> None:
    # A --resume after toggling --no-prompt-encoder must not mix keyframes started two ways.
    source = SourceVideo(np.zeros((3, 64, 64, 3), np.uint8), 30.0)
    config = LevelConfig(rank=2, interval=2, chunk_frames=2)
    options = FitOptions(get_preset("fast"))
    with_encoder = fingerprint(source, "g", config, options)
    assert with_encoder != fingerprint(source, "g", config, replace(options, amortised_start=False))
