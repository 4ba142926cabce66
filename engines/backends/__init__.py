"""Backends behind one interface, chosen by ``make_backend`` from the type of their options."""

from __future__ import annotations

from dataclasses import replace
from typing import TypedDict, Unpack

import torch
from torch import nn

from engines.backends.base import Backend
from engines.backends.frame_sink import FrameSink
from engines.backends.options import (
    SETTINGS_OF_KIND,
    BackendOptions,
    BackendSettings,
    FastTorchOptions,
    TensorRTOptions,
    TorchOptions,
)
from engines.backends.tensorrt_backend import tensorrt_available
from engines.backends.torch_backend import TorchBackend
from engines.variants import BACKEND_KINDS, DEFAULT_MAX_BATCH


def resolve_backend_kind(options: BackendOptions) -> str:
    """The backend ``options`` name; for ``auto`` (no backend named) TensorRT when installed,
    else the fast PyTorch path, on CUDA in half precision, and ``torch`` on the CPU or in float32."""
    if options.backend is not None:
        return options.backend.kind
    if not options.device.startswith("cuda") or options.dtype == torch.float32:
        return "torch"
    return "tensorrt" if tensorrt_available() else "fast"


def make_backend(unet: nn.Module, decoder: nn.Module, options: BackendOptions) -> Backend:
    """The backend ``options`` name (``auto`` resolved, with that backend's default options),
    holding ``unet`` and ``decoder`` on its device."""
    if options.backend is None:
        options = replace(options, backend=SETTINGS_OF_KIND[resolve_backend_kind(options)]())
    if isinstance(options.backend, TorchOptions):
        return TorchBackend(unet, decoder, options)
    if isinstance(options.backend, FastTorchOptions):
        from engines.backends.fast_torch import FastTorchBackend

        return FastTorchBackend(unet, decoder, options)
    from engines.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(unet, decoder, options)


class BackendFlags(TypedDict, total=False):
    """The flat switches of the command line (``promptus daemon``, ``generate``, benchmarks)."""

    channels_last: bool  # torch
    cuda_graph: bool  # torch
    compile_mode: str | None  # torch: both networks; fast: the whole step
    fp8_linear: bool  # fast
    compile_cache_dir: str | None  # fast: the Inductor cache; tensorrt: the engine cache
    attention: str  # fast
    ahead_of_time: bool  # fast
    precompiled: bool  # fast
    max_batch: int  # every backend


def backend_options(
    kind: str, *, device: str, dtype: torch.dtype, **flags: Unpack[BackendFlags]
) -> BackendOptions:
    """Typed options from a backend name and flat switches, each switch going to its backend.

    ``auto`` resolves as ``resolve_backend_kind``, except that a caller that set the torch
    backend's own switches (``channels_last``, ``cuda_graph``, ``compile_mode``) gets ``torch``:
    those switches describe that backend. Switches of another backend than the one chosen are
    ignored (the command line offers them all at once).
    """
    torch_flags = {
        name: flags[name]
        for name in ("channels_last", "cuda_graph", "compile_mode")
        if name in flags
    }
    shared = BackendOptions(
        device=device,
        dtype=dtype,
        backend=None,
        max_batch=flags.get("max_batch", DEFAULT_MAX_BATCH),
    )
    if kind == "auto":
        kind = "torch" if any(torch_flags.values()) else resolve_backend_kind(shared)
    settings: BackendSettings
    if kind == "torch":
        settings = TorchOptions(**torch_flags)  # type: ignore[arg-type]
    elif kind == "fast":
        settings = FastTorchOptions(
            compile_mode=flags.get("compile_mode"),
            fp8_linear=flags.get("fp8_linear", False),
            compile_cache_dir=flags.get("compile_cache_dir"),
            attention=flags.get("attention", "auto"),
            ahead_of_time=flags.get("ahead_of_time", False),
            precompiled=flags.get("precompiled", False),
        )
    elif kind == "tensorrt":
        settings = TensorRTOptions(cache_dir=flags.get("compile_cache_dir"))
    else:
        raise ValueError(f"unknown backend {kind!r}; available: {', '.join(BACKEND_KINDS)}")
    return replace(shared, backend=settings)


__all__ = [
    "Backend",
    "BackendFlags",
    "BackendOptions",
    "FastTorchOptions",
    "FrameSink",
    "TensorRTOptions",
    "TorchBackend",
    "TorchOptions",
    "backend_options",
    "make_backend",
    "resolve_backend_kind",
    "tensorrt_available",
]
