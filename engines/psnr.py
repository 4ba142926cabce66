"""PSNR of two sets of uint8 frames, pooled over every pixel: how closely two paths agree.

For comparing implementations (a compiled step against the eager one, encoded frames against
their source, half precision against float32). Quality against a source, per frame and capped,
is ``authoring.metrics.psnr_per_frame``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

PEAK = 255.0  # uint8 levels


def frames_psnr_db(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """PSNR in dB of two uint8 arrays or tensors of one shape (inf when equal)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        mse = float(((a.float() - b.float()) ** 2).mean())
    else:
        mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(PEAK**2 / mse)
