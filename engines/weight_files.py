"""Reading weight files from local disk: safetensors, or torch files without unpickling code."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from engines.errors import WeightsFormatError

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def read_state_dict(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a local weight file whose names start with ``prefix`` (CPU, stored dtype).

    Safetensors files are read lazily, so only the matching tensors are loaded; torch files
    are opened with ``weights_only=True`` and a nested ``state_dict`` is unwrapped.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}
    if path.suffix in TORCH_SUFFIXES:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, dict):
            raise WeightsFormatError(f"{path} holds no state dict")
        return {
            k: v for k, v in loaded.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)
        }
    raise WeightsFormatError(
        f"{path}: unknown weight file type (use .safetensors or {', '.join(TORCH_SUFFIXES)})"
    )
