"""Hand memory back to the system after a failed or abandoned generation."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

import torch


def release_memory(device: torch.device) -> None:
    """Free what nothing references any more: Python's reference cycles, PyTorch's cached CUDA
    blocks (``empty_cache``) and the C heap's free pages (glibc ``malloc_trim``), so the
    process's resident memory returns to its idle level."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    _trim_c_heap()


def _trim_c_heap() -> None:
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass
