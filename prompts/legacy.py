"""Import of the original release's prompts (``frame_*.prompt`` + ``init.pth``).

Those files are torch pickles. They are opened only with
``torch.load(weights_only=True, map_location="cpu")``, which refuses anything but tensors
and plain containers, and every field is checked before use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.atomic import atomic_directory, check_new_output
from common.errors import UserError
from prompts.keyframe import Keyframe, keyframe_positions
from prompts.ladder import LadderWriter, default_chunk_frames, split_into_chunks
from prompts.manifest import Manifest, StreamInfo
from prompts.quant import QuantizedTensor
from prompts.stream_model import (
    CHAINED,
    CONTEXT_DIM,
    CONTEXT_TOKENS,
    NOISE_SEED,
    PREV_LATENT_WEIGHT,
)

if TYPE_CHECKING:
    import torch

PROMPT_FILE = re.compile(r"^frame_(\d{5,})\.prompt$")
LEGACY_GENERATOR_NAME = "sd-turbo + taesd"
LEGACY_GENERATOR_ID = "sd-turbo+taesd:legacy-unverified"


class LegacyImportError(UserError, ValueError):
    """The legacy folder is incomplete or a file is not what the original release wrote."""


@dataclass(frozen=True)
class LegacyStream:
    keyframes: tuple[Keyframe, ...]
    interval: int
    frames: int
    init_latent: np.ndarray

    @property
    def rank(self) -> int:
        return self.keyframes[0].rank


def _load_tensor_file(path: Path) -> object:
    """What ``torch.load`` reads from ``path`` with pickles refused; the callers check its type."""
    import torch

    try:
        content: object = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # torch raises several types for corrupt or unsafe pickles
        raise LegacyImportError(
            f"{path.name}: not a loadable tensor file ({error.__class__.__name__})"
        ) from None
    return content


def _quantized(
    content: dict[object, object], name: str, shape: tuple[int, int] | None, path: Path
) -> QuantizedTensor:
    import torch

    data = content.get(name)
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or data.dim() != 2:
        raise LegacyImportError(f"{path.name}: {name} must be a 2-D uint8 tensor")
    if shape is not None and tuple(data.shape) != shape:
        raise LegacyImportError(
            f"{path.name}: {name} has shape {tuple(data.shape)}, expected {shape}"
        )
    scale, zero = (_scalar(content, f"{name}_{part}", path) for part in ("scale", "zero_point"))
    try:
        return QuantizedTensor(
            data.numpy().copy(),
            float(scale.to(torch.float32).item()),
            float(zero.to(torch.float32).item()),
        )
    except ValueError as error:
        raise LegacyImportError(f"{path.name}: {error}") from None


def _scalar(content: dict[object, object], label: str, path: Path) -> torch.Tensor:
    import torch

    value = content.get(label)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise LegacyImportError(f"{path.name}: {label} must be a scalar tensor")
    return value


def read_legacy_folder(folder: str | Path) -> LegacyStream:
    """Read and validate a ``rank*_interval*`` folder of the original release."""
    import torch

    root = Path(folder)
    if not root.is_dir():
        raise LegacyImportError(f"{root} is not a directory")
    files = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := PROMPT_FILE.match(p.name)))
    if len(files) < 2:
        raise LegacyImportError(
            f"{root}: need at least two frame_*.prompt files, found {len(files)}"
        )
    positions = [number for number, _ in files]
    interval = positions[1] - positions[0]
    frames = positions[-1] + 1
    if positions[0] != 0 or interval < 1 or positions != keyframe_positions(frames, interval):
        raise LegacyImportError(
            f"{root}: keyframe numbers {positions[:4]}... are not 0, N, 2N, ..."
        )
    keyframes = []
    rank_shape: tuple[int, int] | None = None
    for number, path in files:
        content = _load_tensor_file(path)
        if not isinstance(content, dict):
            raise LegacyImportError(f"{path.name}: expected a dict of tensors")
        u = _quantized(content, "U", rank_shape, path)
        rank = u.shape[1]
        rank_shape = (CONTEXT_TOKENS, rank)
        if u.shape != rank_shape:
            raise LegacyImportError(f"{path.name}: U has shape {u.shape}, expected (77, r)")
        v = _quantized(content, "V", (rank, CONTEXT_DIM), path)
        keyframes.append(Keyframe(frame=number, u=u, v=v))
    init_path = root / "init.pth"
    if not init_path.is_file():
        raise LegacyImportError(f"{root}: init.pth is missing")
    init = _load_tensor_file(init_path)
    if not isinstance(init, torch.Tensor) or init.dim() != 4 or init.shape[:2] != (1, 4):
        raise LegacyImportError("init.pth: expected a 1x4xHxW latent tensor")
    return LegacyStream(
        keyframes=tuple(keyframes),
        interval=interval,
        frames=frames,
        init_latent=init.to(torch.float32).numpy().copy(),
    )


def import_legacy(
    folder: str | Path,
    out: str | Path,
    *,
    fps: float = 30.0,
    chunk_frames: int | None = None,
    generator_id: str = LEGACY_GENERATOR_ID,
    replace: bool = False,
) -> Manifest:
    """Write a one-level ladder (rule ``chained``) from the original release's prompts.

    The ladder is built in a new directory beside ``out`` and renamed into place: a
    non-empty ``out`` is refused unless ``replace`` (then no stale file of it survives), a
    symlinked ``out`` always (``common.atomic.OutputExistsError``).
    """
    check_new_output(Path(out), replace=replace)  # before the slow part
    legacy = read_legacy_folder(folder)
    chunk_frames = chunk_frames or default_chunk_frames(legacy.interval, fps)
    if chunk_frames % legacy.interval:
        raise LegacyImportError(
            f"chunk length {chunk_frames} frames is not a multiple of the interval {legacy.interval}"
        )
    _, _, height, width = legacy.init_latent.shape
    stream = StreamInfo(
        fps=fps,
        width=width * 8,
        height=height * 8,
        frames=legacy.frames,
        chunk_frames=chunk_frames,
        generator_id=generator_id,
        generator_name=LEGACY_GENERATOR_NAME,
        noise_seed=NOISE_SEED,
        prev_latent_weight=PREV_LATENT_WEIGHT,
        prev_latent_rule=CHAINED,
    )
    name = f"r{legacy.rank}n{legacy.interval}"
    with atomic_directory(out, replace=replace) as building:
        writer = LadderWriter(building, stream, [(name, legacy.rank, legacy.interval)])
        writer.write_init_state(legacy.init_latent, dtype="float32")
        chunks = split_into_chunks(legacy.keyframes, stream, level=0, interval=legacy.interval)
        for chunk in chunks:
            writer.append_chunk(0, chunk)
        return writer.finish()
