"""Backends behind one interface, chosen by ``make_backend``."""

from __future__ import annotations

from torch import nn

from engines.backends.base import Backend, BackendOptions, image_to_uint8
from engines.backends.torch_backend import TorchBackend

BACKEND_KINDS = ("torch",)
PLANNED_BACKEND_KINDS = ("tensorrt",)  # the seam: a later issue adds a class here


def make_backend(unet: nn.Module, decoder: nn.Module, options: BackendOptions) -> Backend:
    """The backend ``options.kind`` names, holding ``unet`` and ``decoder`` on its device."""
    if options.kind == "torch":
        return TorchBackend(unet, decoder, options)
    if options.kind in PLANNED_BACKEND_KINDS:
        raise ValueError(f"backend {options.kind!r} is not available yet; available: {', '.join(BACKEND_KINDS)}")
    raise ValueError(f"unknown backend {options.kind!r}; available: {', '.join(BACKEND_KINDS)}")


__all__ = ["Backend", "BackendOptions", "BACKEND_KINDS", "TorchBackend", "image_to_uint8", "make_backend"]
