"""Where generation runs: ``auto`` resolved, and the default precision."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available")
    return device


def default_dtype(device: str) -> torch.dtype:
    """float32 on CPU, float16 on CUDA (x0 is float32 either way)."""
    return torch.float16 if device.startswith("cuda") else torch.float32
