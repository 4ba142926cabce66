"""The one frame-agreement PSNR: numpy arrays and torch tensors alike."""

from __future__ import annotations

import math

import numpy as np
import torch

from engines.psnr import frames_psnr_db


def test_equal_frames_are_infinitely_close():
    frames = np.full((2, 4, 4, 3), 7, dtype=np.uint8)
    assert frames_psnr_db(frames, frames) == math.inf


def test_arrays_and_tensors_give_the_same_db():
    a = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    b = np.full((1, 4, 4, 3), 255, dtype=np.uint8)
    b[0, 0, 0, 0] = 0
    expected = 10 * math.log10(255.0**2 / (255.0**2 * 47 / 48))
    assert math.isclose(frames_psnr_db(a, b), expected)
    assert math.isclose(frames_psnr_db(torch.from_numpy(a), torch.from_numpy(b)), expected)
