"""Generator identity: ``"<family>:<hex>"`` from the architecture configs and the weights."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

ID_HEX_CHARS = 16  # 64 bits: collisions between real weight sets are not a concern


def _update_with_module(hasher: hashlib._Hash, module: nn.Module) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        # Hash float32 values so the id does not depend on the dtype or device weights run in.
        array = np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy(), dtype="<f4")
        hasher.update(f"{name}:{list(array.shape)}\n".encode())
        hasher.update(array.data.cast("B"))  # the array's memoryview


def compute_generator_id(
    family: str, configs: Mapping[str, dict], modules: Mapping[str, nn.Module]
) -> str:
    """Hash of the configs (canonical JSON) and every weight of ``modules`` (float32, sorted by name)."""
    hasher = hashlib.sha256()
    hasher.update(json.dumps({"family": family, "configs": configs}, sort_keys=True).encode())
    for component in sorted(modules):
        hasher.update(f"[{component}]\n".encode())
        _update_with_module(hasher, modules[component])
    return f"{family}:{hasher.hexdigest()[:ID_HEX_CHARS]}"
