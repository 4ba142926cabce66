"""VMAF through vmaf-torch (authoring.metrics) against the scores Netflix publishes for its clips.

The clips and the scores' source: tests/authoring/resources/vmaf/README.md.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("vmaf_torch", reason="vmaf-torch missing: pip install '.[vmaf]'")

from authoring.metrics import luma_levels, luma_vmaf_per_frame, quality, vmaf_per_frame  # noqa: E402

RESOURCES = Path(__file__).parent / "resources" / "vmaf"
WIDTH, HEIGHT, FRAMES = 160, 90, 48
# Netflix/vmaf python/test/quality_runner_test.py, test_run_vmaf_runner_input160x90 (vmaf_v0.6.1)
PUBLISHED_DISTORTED = 92.52095888042386
PUBLISHED_REFERENCE = 99.30667316266532
# libvmaf computes integer features, vmaf-torch floats: measured 0.0015 and 0.0022 apart here
AGREEMENT = 0.01


def luma_of(name: str) -> np.ndarray:
    """The Y planes ``[frames, height, width]`` of a yuv420p clip."""
    raw = np.frombuffer(lzma.decompress((RESOURCES / name).read_bytes()), np.uint8)
    frame = WIDTH * HEIGHT * 3 // 2
    assert raw.size == FRAMES * frame
    return raw.reshape(FRAMES, frame)[:, : WIDTH * HEIGHT].reshape(FRAMES, HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    return luma_of("src01_160x90_ref.yuv.xz"), luma_of("src01_160x90_dis.yuv.xz")


def test_the_published_scores_of_netflixs_160x90_pair(pair) -> None:  # type: ignore[no-untyped-def]
    reference, distorted = pair
    assert abs(luma_vmaf_per_frame(distorted, reference).mean() - PUBLISHED_DISTORTED) < AGREEMENT
    assert abs(luma_vmaf_per_frame(reference, reference).mean() - PUBLISHED_REFERENCE) < AGREEMENT


def test_batches_carry_the_motion_across(pair) -> None:  # type: ignore[no-untyped-def]
    reference, distorted = pair
    whole = luma_vmaf_per_frame(distorted, reference, batch=FRAMES)
    for batch in (1, 5, 16):  # float32 sums may differ in their last bits with the batch
        assert np.abs(luma_vmaf_per_frame(distorted, reference, batch=batch) - whole).max() < 0.005
    assert whole[0] != whole[1]  # frame 0 has no motion; the others do


def test_rgb_frames_are_scored_on_the_luma_the_encoder_gets() -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64]
    frames = np.stack(
        [np.stack([(x * 4 + t) % 256, (y * 4) % 256, np.full_like(x, 90)], -1) for t in range(6)]
    ).astype(np.uint8)
    mild = np.clip(frames + rng.normal(0, 4, frames.shape), 0, 255).astype(np.uint8)
    strong = np.clip(frames + rng.normal(0, 24, frames.shape), 0, 255).astype(np.uint8)
    same, good, bad = (vmaf_per_frame(d, frames).mean() for d in (frames, mild, strong))
    assert 0 <= bad < good < same <= 100
    assert luma_levels(frames).shape == (6, 64, 64) and luma_levels(frames).dtype == np.uint8
    assert quality(mild, frames, vmaf_device="cpu")["vmaf"] == round(good, 3)
    assert "vmaf" not in quality(mild, frames)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_the_cpu(pair) -> None:  # type: ignore[no-untyped-def]
    reference, distorted = pair
    cpu = luma_vmaf_per_frame(distorted, reference)
    cuda = luma_vmaf_per_frame(distorted, reference, device="cuda")
    assert np.abs(cuda - cpu).max() < 0.01
    assert abs(cuda.mean() - PUBLISHED_DISTORTED) < AGREEMENT
