"""Hand memory back to the system after a failed or abandoned generation."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys
from collections.abc import Callable

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
    malloc_trim = _malloc_trim()
    if malloc_trim is not None:
        malloc_trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ldconfig); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
