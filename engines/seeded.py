"""Seeded weights that are bit-identical on every machine and torch version.

Torch's initialisers change between versions and depend on the global RNG and on module
construction order, so they cannot define a generator whose identity is recorded. Each
tensor here is drawn from its own ``numpy.random.RandomState`` (whose stream numpy keeps
stable), seeded by a hash of the base seed and the tensor's name: the values depend only on
(seed, name, shape), never on the order in which tensors are visited.
"""

from __future__ import annotations

import hashlib
import math
from typing import TypeVar

import numpy as np
import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def tensor_seed(seed: int, name: str) -> int:
    """The 32-bit RandomState seed of one named tensor."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seeded_array(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values for one tensor: unit-variance-preserving uniform for weights, 1/0 for norms and biases."""
    if name.endswith("bias"):
        return np.zeros(shape, dtype=np.float32)
    if len(shape) < 2:
        # 1-D weights here are GroupNorm/LayerNorm scales.
        return np.ones(shape, dtype=np.float32)
    fan_in = int(np.prod(shape[1:]))
    bound = math.sqrt(3.0 / fan_in)  # uniform(-b, b) has variance 1/fan_in
    state = np.random.RandomState(tensor_seed(seed, name))
    values = state.random_sample(int(np.prod(shape)))  # float64 in [0, 1)
    return ((values * 2.0 - 1.0) * bound).astype(np.float32).reshape(shape)


@torch.no_grad()
def fill_seeded_(module: ModuleT, seed: int) -> ModuleT:
    """Overwrite every floating tensor of ``module``'s state dict with its seeded values."""
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point():
            tensor.copy_(torch.from_numpy(seeded_array(seed, name, tuple(tensor.shape))))
    return module


@torch.no_grad()
def fill_random_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """``fill_seeded_``'s distributions drawn with ``generator`` on the module's device: fast
    for large networks, the same values only on one kind of device (for benchmarks)."""
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            continue
        if name.endswith("bias"):
            tensor.zero_()
        elif tensor.dim() < 2:
            tensor.fill_(1.0)
        else:
            bound = math.sqrt(3.0 / tensor[0].numel())  # uniform(-b, b) has variance 1/fan_in
            tensor.uniform_(-bound, bound, generator=generator)
    return module
