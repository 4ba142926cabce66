"""8-bit affine quantisation of prompt factors, as the original release does it.

The scheme follows the pytorch-quantization-demo code the reference builds on: the range
always includes 0, ``scale = (max - min) / 255``, ``zero_point = round(255 - max / scale)``
clamped to [0, 255], ``q = clamp(round(zero_point + x / scale), 0, 255)`` and
``x' = scale * (q - zero_point)``, all in float32. Scale and zero point are stored as
float32 so that dequantised values are bit-exact with the original code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

QMIN = 0.0
QMAX = 255.0  # 8 bits
MIN_SCALE = np.float32(np.finfo(np.float32).tiny)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """A uint8 tensor with its float32 scale and zero point."""

    data: np.ndarray
    scale: float
    zero_point: float

    def __post_init__(self) -> None:
        if self.data.dtype != np.uint8:
            raise ValueError(f"quantized data must be uint8, got {self.data.dtype}")
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"quantization scale must be finite and positive, got {self.scale}")
        if not (QMIN <= self.zero_point <= QMAX):
            raise ValueError(f"zero point {self.zero_point} outside [0, 255]")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def dequantize(self) -> np.ndarray:
        """float32(scale) * (data - float32(zero_point)), element for element as torch does it."""
        scale = np.float32(self.scale)
        zero = np.float32(self.zero_point)
        return scale * (self.data.astype(np.float32) - zero)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizedTensor):
            return NotImplemented
        return (
            np.float32(self.scale) == np.float32(other.scale)
            and np.float32(self.zero_point) == np.float32(other.zero_point)
            and self.data.shape == other.data.shape
            and bool(np.array_equal(self.data, other.data))
        )

    __hash__ = None  # type: ignore[assignment]  # unhashable: equal by value (mypy wants a method)


def scale_and_zero_point(min_value: float, max_value: float) -> tuple[np.float32, np.float32]:
    """Quantisation parameters for a range, widened to include 0 (float32 arithmetic)."""
    low = np.float32(min(float(min_value), 0.0))
    high = np.float32(max(float(max_value), 0.0))
    if high == low:  # an all-zero tensor: any positive scale represents it exactly
        return np.float32(1.0), np.float32(0.0)
    # A range so narrow that the step underflows gets the smallest normal step instead.
    scale = max(np.float32((high - low) / np.float32(QMAX - QMIN)), MIN_SCALE)
    zero_point = np.float32(QMAX) - high / scale
    zero_point = np.float32(np.round(np.clip(zero_point, QMIN, QMAX)))
    return scale, zero_point


def quantize_tensor(
    values: np.ndarray | torch.Tensor, value_range: tuple[float, float] | None = None
) -> QuantizedTensor:
    """Quantise a float tensor (numpy or torch) to 8 bits with its own scale and zero point.

    ``value_range`` (low, high) replaces the tensor's own min/max, e.g. the running range a
    quantiser kept over a whole fit; values outside it saturate.
    """
    array = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError("cannot quantize a tensor with NaN or infinite values")
    low, high = (array.min(), array.max()) if value_range is None else value_range
    scale, zero_point = scale_and_zero_point(low, high)
    q = np.clip(np.round(zero_point + array / scale), QMIN, QMAX).astype(np.uint8)
    return QuantizedTensor(q, float(scale), float(zero_point))


def fake_quantize(
    values: torch.Tensor,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    dims: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Quantise-dequantise in the forward pass, identity gradient (straight-through).

    The range is the tensor's own min/max, or over ``dims`` only (one range per remaining
    index, e.g. per stacked keyframe), or the given ``low``/``high`` (a running range).
    Everything stays on the tensor's device (no host synchronisation).
    """
    import torch

    with torch.no_grad():
        if low is None or high is None:
            if dims is None:
                low, high = values.min(), values.max()
            else:
                low, high = values.amin(dim=dims, keepdim=True), values.amax(dim=dims, keepdim=True)
        low = torch.clamp(low, max=0.0)
        high = torch.clamp(high, min=0.0)
        scale = torch.where(
            high > low,
            torch.clamp((high - low) / (QMAX - QMIN), min=float(MIN_SCALE)),
            torch.ones_like(high),
        )
        zero_point = torch.round(torch.clamp(QMAX - high / scale, QMIN, QMAX))
        q = torch.clamp(torch.round(zero_point + values / scale), QMIN, QMAX)
        dequantized = scale * (q - zero_point)
    # dequantized + (values - values.detach()) is bit-exact with quantize_tensor().dequantize()
    return dequantized + (values - values.detach())
