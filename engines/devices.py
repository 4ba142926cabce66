"""Where generation runs: ``auto`` resolved, the default precision, and the device's name.

The one naming rule for reports and logs: ``card_name`` is the card alone (``NVIDIA H100 80GB
HBM3``, or ``x86_64 CPU, 16 threads``) for benchmark rows; ``describe_device`` is the device and
its card (``cuda:0 (NVIDIA H100 80GB HBM3)``, or ``cpu``) for a daemon's status and task results.
"""

from __future__ import annotations

import platform

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


def card_name(device: str | torch.device) -> str:
    """The card a benchmark ran on: the GPU's name, or the CPU and torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {torch.get_num_threads()} threads"


def describe_device(device: str | torch.device) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)`` for a GPU, ``cpu`` for the CPU."""
    name = str(device)
    if name.startswith("cuda"):
        return f"{name} ({torch.cuda.get_device_name(torch.device(name))})"
    return name
