"""Quality of decoded frames against the source: PSNR (RGB), SSIM (luma) and VMAF, per frame and pooled.

One implementation for the whole project's prompt-side numbers: the ladder's per-chunk
quality and ``promptus eval`` both use these, so levels and classic codecs are comparable.

VMAF is Netflix's model ``vmaf_v0.6.1`` (libvmaf's default) as the ``vmaf-torch`` package
computes it on torch, on the CPU or a GPU (the ``vmaf`` extra: ``pip install '.[vmaf]'``). It
scores the luma the H.264 encoder is given (BT.601 limited range, ``engines.colour``), each
frame's score clipped to [0, 100] as libvmaf does; the motion feature runs across the frames
given, so a chunk scored alone starts with no motion, as libvmaf would score that chunk. On
Netflix's published pairs it agrees with libvmaf to 0.003 (tests/authoring/test_vmaf.py).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from authoring.losses import gaussian_window, ssim_terms
from common.errors import UserError
from engines.colour import levels_to_luma

PSNR_CAP = 100.0  # dB reported for identical frames
_LUMA = (0.299, 0.587, 0.114)  # BT.601, as FFmpeg's ssim filter weighs Y
VMAF_BATCH = 16  # frames whose VMAF features are computed at once (memory grows with it)
VMAF_INSTALL = "pip install '.[vmaf]' (vmaf-torch; make test installs it)"


class VmafUnavailable(UserError):
    """VMAF was asked for and vmaf-torch is not installed."""


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


def vmaf_missing() -> str | None:
    """Why VMAF cannot be measured here (vmaf-torch missing), or None when it can."""
    try:
        import vmaf_torch  # noqa: F401
    except ImportError as error:
        return f"vmaf-torch is not installed ({error}); {VMAF_INSTALL}"
    return None


@functools.lru_cache(maxsize=4)
def _vmaf_model(device: str) -> Any:  # vmaf_torch.VMAF (vmaf-torch ships no types)
    problem = vmaf_missing()
    if problem is not None:
        raise VmafUnavailable(f"VMAF: {problem}")
    from vmaf_torch import VMAF

    return VMAF(clip_score=True).to(device).eval()


def luma_levels(frames: np.ndarray, batch: int = VMAF_BATCH) -> np.ndarray:
    """``uint8 [T, H, W, 3]`` RGB -> ``uint8 [T, H, W]`` luma: the Y plane the encoder gets."""
    planes = []
    for start in range(0, len(frames), batch):
        rgb = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch]))
        planes.append(levels_to_luma(rgb.permute(0, 3, 1, 2).float()).numpy())
    return np.concatenate(planes) if planes else np.zeros(frames.shape[:3], np.uint8)


def vmaf_per_frame(
    decoded: np.ndarray, reference: np.ndarray, device: str = "cpu", batch: int = VMAF_BATCH
) -> np.ndarray:
    """VMAF (``vmaf_v0.6.1``) of each ``uint8 [T, H, W, 3]`` frame pair, on their luma, on
    ``device``; VmafUnavailable without vmaf-torch."""
    _check_pair(decoded, reference)
    return luma_vmaf_per_frame(luma_levels(decoded), luma_levels(reference), device, batch)


@torch.no_grad()
def luma_vmaf_per_frame(
    decoded: np.ndarray, reference: np.ndarray, device: str = "cpu", batch: int = VMAF_BATCH
) -> np.ndarray:
    """VMAF of each ``[T, H, W]`` luma pair (8-bit levels, any numeric type), ``batch`` frames at
    a time on ``device`` (the motion feature runs across batches)."""
    _check_pair(decoded, reference)
    model = _vmaf_model(str(device))

    def levels(frames: np.ndarray, start: int) -> torch.Tensor:
        part = np.ascontiguousarray(frames[start : start + batch], dtype=np.float32)
        return torch.from_numpy(part)[:, None].to(device)

    motion, adm, vif = [], [], []
    previous = None  # the reference frame before the batch
    for start in range(0, len(decoded), batch):
        ref, dist = levels(reference, start), levels(decoded, start)
        with_previous = ref if previous is None else torch.cat([previous, ref])
        motion.append(model.compute_motion(with_previous)[-len(ref) :])
        adm.append(model.compute_adm_score(ref, dist))
        vif.append(model.compute_vif_features(ref, dist))
        previous = ref[-1:]
    moved = torch.cat(motion)  # [T, 1]: mean blurred difference to the frame before (0 first)
    # motion2 (libvmaf): the smaller of the motion to the frame before and to the frame after
    motion2 = torch.minimum(moved, torch.cat([moved[1:], moved[-1:]]))
    motion2[0] = 0
    scores = model.predict(torch.cat(adm), motion2, torch.cat(vif))
    return scores[:, 0].double().cpu().numpy()


def quality(
    decoded: np.ndarray, reference: np.ndarray, vmaf_device: str | None = None
) -> dict[str, float]:
    """Mean per-frame PSNR and SSIM (and VMAF on ``vmaf_device`` when given), rounded for a
    manifest."""
    psnr = float(psnr_per_frame(decoded, reference).mean())
    ssim = float(ssim_per_frame(decoded, reference).mean())
    scores = {"psnr": round(psnr, 3) if math.isfinite(psnr) else PSNR_CAP, "ssim": round(ssim, 5)}
    if vmaf_device is not None:
        scores["vmaf"] = round(float(vmaf_per_frame(decoded, reference, vmaf_device).mean()), 3)
    return scores


def _check_pair(decoded: np.ndarray, reference: np.ndarray) -> None:
    if decoded.shape != reference.shape:
        raise ValueError(
            f"decoded frames {decoded.shape} and reference {reference.shape} differ in shape"
        )
