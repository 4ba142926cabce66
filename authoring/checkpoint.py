"""Checkpoints of a level's fit: written atomically after every keyframe, read by ``--resume``.

The file is safetensors (tensors plus string metadata, nothing executable). It holds the
fitted keyframes (quantised bytes, scale, zero point), the last keyframe's float factors (the
next warm start), the carried latents, per-keyframe stats and a fingerprint of the settings; a
resume with different settings is refused rather than silently mixing two fits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from authoring.fit_state import FitState, KeyframeStats
from common.atomic import atomic_write_bytes
from common.errors import UserError
from prompts.keyframe import Keyframe
from prompts.quant import QuantizedTensor

CHECKPOINT_FORMAT = "promptus-fit-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be resumed (unreadable, other settings)."""


def save_checkpoint(path: Path, state: FitState, fingerprint: dict[str, Any]) -> None:
    """Write ``state`` atomically to ``path``."""
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray] = {}
    quant_params = []
    for i, keyframe in enumerate(state.keyframes):
        tensors[f"kf{i}.u"] = keyframe.u.data
        tensors[f"kf{i}.v"] = keyframe.v.data
        quant_params.append(
            [
                keyframe.frame,
                keyframe.u.scale,
                keyframe.u.zero_point,
                keyframe.v.scale,
                keyframe.v.zero_point,
            ]
        )
    if state.factors is not None:
        tensors["factors.u"], tensors["factors.v"] = state.factors
    if state.group_input is not None:
        tensors["group_input"] = state.group_input
    if state.last_x0 is not None:
        tensors["last_x0"] = state.last_x0
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "version": str(CHECKPOINT_VERSION),
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
        "keyframes": json.dumps(quant_params),
        "stats": json.dumps([vars(s) for s in state.stats]),
    }
    contiguous = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=metadata))


def load_checkpoint(path: Path, fingerprint: dict[str, Any]) -> FitState:
    """Read a checkpoint written by :func:`save_checkpoint` for the same settings."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"checkpoint {path} is unreadable: {error}") from None
    if metadata.get("format") != CHECKPOINT_FORMAT or metadata.get("version") != str(
        CHECKPOINT_VERSION
    ):
        raise CheckpointError(f"{path} is not a version {CHECKPOINT_VERSION} fit checkpoint")
    saved = json.loads(metadata["fingerprint"])
    changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if changed:
        raise CheckpointError(
            f"checkpoint {path} was made with other settings ({', '.join(changed)}); "
            "rerun without --resume or with the same settings"
        )
    state = FitState()
    for i, (frame, us, uz, vs, vz) in enumerate(json.loads(metadata["keyframes"])):
        u = QuantizedTensor(tensors[f"kf{i}.u"], us, uz)
        v = QuantizedTensor(tensors[f"kf{i}.v"], vs, vz)
        state.keyframes.append(Keyframe(int(frame), u, v))
    state.stats = [KeyframeStats(**entry) for entry in json.loads(metadata["stats"])]
    if "factors.u" in tensors:
        state.factors = (tensors["factors.u"], tensors["factors.v"])
    state.group_input = tensors.get("group_input")
    state.last_x0 = tensors.get("last_x0")
    return state
