"""Frames as planar YUV 4:2:0 from the generation step: equal (within one level) to swscale's conversion."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from engines.colour import RGB24, YUV420P, frame_shape, image_to_frames, levels_to_yuv420p
from prompts.testing import level_chunks
from tests.engines.conftest import TEST_SIZE, init_latent


def swscale_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """What PyAV hands x264 for an RGB frame today: swscale's rgb24 -> yuv420p, as [H*3/2, W]."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()


def smooth_and_noisy(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    smooth = np.stack(
        [127 + 120 * np.sin(x / 7), 127 + 120 * np.sin(y / 5), 127 + 120 * np.sin((x - y) / 9)], -1
    )
    noisy = np.random.default_rng(3).integers(0, 256, (height, width, 3))
    return np.stack([smooth, noisy]).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(("height", "width"), [(64, 64), (64, 128), (130, 66)])
def test_yuv420p_equals_swscale_within_one_level(height, width):
    rgb = smooth_and_noisy(height, width)
    levels = torch.from_numpy(rgb).permute(0, 3, 1, 2).float()
    ours = levels_to_yuv420p(levels).numpy()
    assert ours.shape == (2, *frame_shape(YUV420P, height, width)) and ours.dtype == np.uint8
    for frame, mine in zip(rgb, ours, strict=True):
        difference = np.abs(mine.astype(int) - swscale_yuv420p(frame).astype(int))
        assert difference.max() <= 1
        assert difference.mean() < 0.5  # rounding, not a shifted plane


def test_frames_of_either_format_come_from_the_same_levels():
    image = torch.rand(3, 3, 16, 32) * 2.2 - 1.1  # a decoder's output runs a little past [-1, 1]
    rgb = image_to_frames(image, RGB24)
    assert rgb.shape == (3, 16, 32, 3) and rgb.dtype == torch.uint8
    torch.testing.assert_close(
        image_to_frames(image, YUV420P), levels_to_yuv420p(rgb.permute(0, 3, 1, 2).float())
    )
    with pytest.raises(ValueError, match="frame format 'nv12'"):
        image_to_frames(image, "nv12")
    with pytest.raises(ValueError, match="even frame size"):
        frame_shape(YUV420P, 15, 16)


def test_a_yuv_stream_equals_todays_rgb_path_within_one_level(tiny_generator):
    """The tiny generator's chunks in yuv420p vs its RGB chunks converted by swscale (today's encoder input)."""
    chunks = level_chunks(tiny_generator.generator_id, frames=8, interval=4, chunk_frames=8)
    streams = {
        fmt: tiny_generator.open_stream(
            width=TEST_SIZE, height=TEST_SIZE, init_latent=init_latent(), frame_format=fmt
        )
        for fmt in (RGB24, YUV420P)
    }
    rgb = streams[RGB24].decode_chunk(chunks[0])
    yuv = np.concatenate(list(streams[YUV420P].iter_chunk(chunks[0])))
    assert yuv.shape == (8, TEST_SIZE * 3 // 2, TEST_SIZE)
    for frame, planar in zip(rgb, yuv, strict=True):
        assert np.abs(planar.astype(int) - swscale_yuv420p(frame).astype(int)).max() <= 1
