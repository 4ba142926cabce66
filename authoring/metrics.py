"""Quality of decoded frames against the source: PSNR (RGB) and SSIM (luma), per frame and pooled.

One implementation for the whole project's prompt-side numbers: the ladder's per-chunk
quality and ``promptus eval`` both use these, so levels and classic codecs are comparable.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from authoring.losses import gaussian_window, ssim_terms

PSNR_CAP = 100.0  # dB reported for identical frames
_LUMA = (0.299, 0.587, 0.114)  # BT.601, as FFmpeg's ssim filter weighs Y


def psnr_per_frame(decoded: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSNR in dB of each ``uint8 [T, H, W, 3]`` frame pair (capped at PSNR_CAP)."""
    _check_pair(decoded, reference)
    diff = decoded.astype(np.float64) - reference.astype(np.float64)
    mse = (diff**2).reshape(len(diff), -1).mean(1)
    with np.errstate(divide="ignore"):
        values = 10 * np.log10(255.0**2 / mse)
    return np.minimum(values, PSNR_CAP)


def ssim_per_frame(decoded: np.ndarray, reference: np.ndarray, batch: int = 16) -> np.ndarray:
    """SSIM of the luma of each ``uint8 [T, H, W, 3]`` frame pair (11x11 Gaussian window)."""
    _check_pair(decoded, reference)
    weights = torch.tensor(_LUMA, dtype=torch.float64).view(1, 3, 1, 1)
    window = gaussian_window(1, torch.device("cpu"), torch.float64)
    values = []
    for start in range(0, len(decoded), batch):
        pair = [
            (
                torch.from_numpy(np.ascontiguousarray(a[start : start + batch]))
                .permute(0, 3, 1, 2)
                .double()
                / 255
                * weights
            ).sum(1, keepdim=True)
            for a in (decoded, reference)
        ]
        ssim, _ = ssim_terms(pair[0], pair[1], window)
        values.append(ssim.numpy())
    return np.concatenate(values)


def quality(decoded: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean per-frame PSNR and SSIM, rounded for a manifest."""
    psnr = float(psnr_per_frame(decoded, reference).mean())
    ssim = float(ssim_per_frame(decoded, reference).mean())
    return {"psnr": round(psnr, 3) if math.isfinite(psnr) else PSNR_CAP, "ssim": round(ssim, 5)}


def _check_pair(decoded: np.ndarray, reference: np.ndarray) -> None:
    if decoded.shape != reference.shape:
        raise ValueError(
            f"decoded frames {decoded.shape} and reference {reference.shape} differ in shape"
        )
