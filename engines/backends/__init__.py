"""Backends behind one interface, chosen by ``make_backend``."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from engines.backends.base import Backend, BackendOptions
from engines.backends.frame_sink import FrameSink
from engines.backends.tensorrt_backend import tensorrt_available
from engines.backends.torch_backend import TorchBackend
from engines.variants import BACKEND_KINDS


def resolve_backend_kind(options: BackendOptions) -> str:
    """``auto``: TensorRT when installed, else the fast PyTorch path, on CUDA; ``torch`` on the CPU.

    A caller that set the torch backend's own switches (``channels_last``, ``cuda_graph``,
    ``compile_mode``) or asked for float32 gets ``torch``: those options describe that backend.
    """
    if options.kind != "auto":
        return options.kind
    wants_torch = (
        options.channels_last
        or options.cuda_graph
        or options.compile_mode is not None
        or options.dtype == torch.float32
    )
    if not options.device.startswith("cuda") or wants_torch:
        return "torch"
    return "tensorrt" if tensorrt_available() else "fast"


def make_backend(unet: nn.Module, decoder: nn.Module, options: BackendOptions) -> Backend:
    """The backend ``options.kind`` names (``auto`` resolved), holding ``unet`` and ``decoder`` on its device."""
    kind = resolve_backend_kind(options)
    options = replace(options, kind=kind)
    if kind == "torch":
        return TorchBackend(unet, decoder, options)
    if kind == "fast":
        from engines.backends.fast_torch import FastTorchBackend

        return FastTorchBackend(unet, decoder, options)
    if kind == "tensorrt":
        from engines.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(unet, decoder, options)
    raise ValueError(f"unknown backend {kind!r}; available: {', '.join(BACKEND_KINDS)}")


__all__ = [
    "Backend",
    "BackendOptions",
    "FrameSink",
    "TorchBackend",
    "make_backend",
    "resolve_backend_kind",
    "tensorrt_available",
]
