"""Keyframe prompts, their composition ``c = U V / sqrt(r)`` and interpolation between them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prompts.quant import QuantizedTensor


@dataclass(frozen=True)
class Keyframe:
    """The prompt of one keyframe: U (tokens x r) and V (r x dim), each quantised to 8 bits."""

    frame: int
    u: QuantizedTensor
    v: QuantizedTensor

    def __post_init__(self) -> None:
        if self.frame < 0:
            raise ValueError(f"keyframe position must be >= 0, got {self.frame}")
        if len(self.u.shape) != 2 or len(self.v.shape) != 2:
            raise ValueError("U and V must be matrices")
        if self.u.shape[1] != self.v.shape[0]:
            raise ValueError(f"U {self.u.shape} and V {self.v.shape} disagree on the rank")
        if self.rank < 1:
            raise ValueError("rank must be at least 1")

    @property
    def rank(self) -> int:
        return self.u.shape[1]

    @property
    def tokens(self) -> int:
        return self.u.shape[0]

    @property
    def dim(self) -> int:
        return self.v.shape[1]

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Dequantised (U, V) in float32."""
        return self.u.dequantize(), self.v.dequantize()

    def context(self) -> np.ndarray:
        """The keyframe's own context ``U V / sqrt(r)``."""
        u, v = self.factors()
        context: np.ndarray = compose_context(u, v)
        return context


def compose_context(u: Any, v: Any) -> Any:
    """``c = U @ V / sqrt(r)`` for numpy arrays or torch tensors (batched or not)."""
    rank = u.shape[-1]
    return (u @ v) / math.sqrt(rank)


def interpolation_weight(frame: int, start: int, end: int) -> float:
    """Weight of the later keyframe for ``frame`` in the interval ``[start, end)``."""
    if not start <= frame <= end or end <= start:
        raise ValueError(f"frame {frame} is not inside keyframe interval [{start}, {end}]")
    return (frame - start) / (end - start)


def interpolate_factors(a: Keyframe, b: Keyframe, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated (U, V) of ``frame`` between consecutive keyframes ``a`` and ``b``."""
    weight = interpolation_weight(frame, a.frame, b.frame)
    ua, va = a.factors()
    ub, vb = b.factors()
    w = np.float32(weight)
    one = np.float32(1.0) - w
    return one * ua + w * ub, one * va + w * vb


def interpolate_context(a: Keyframe, b: Keyframe, frame: int) -> np.ndarray:
    """Context of ``frame``: factors interpolated linearly, then composed."""
    if frame == a.frame:
        return a.context()
    u, v = interpolate_factors(a, b, frame)
    context: np.ndarray = compose_context(u, v)
    return context.astype(np.float32, copy=False)


def keyframe_positions(frames: int, interval: int) -> list[int]:
    """Keyframes at 0, N, 2N, ... and at the last frame when it is not a multiple of N."""
    if frames < 1:
        raise ValueError("a stream needs at least one frame")
    if interval < 1:
        raise ValueError("interval must be at least 1")
    positions = list(range(0, frames, interval))
    if positions[-1] != frames - 1:
        positions.append(frames - 1)
    return positions
