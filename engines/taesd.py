"""TAESD (diffusers ``AutoencoderTiny``) from shipped configs and original-layout or diffusers weights."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderTiny

from engines.errors import WeightsFormatError, WeightsNotFoundError
from engines.model_configs import TAESD, architecture_config
from engines.weight_files import read_state_dict

TAESD_HOW_TO_OBTAIN = (
    "get taesd_decoder.safetensors and taesd_encoder.safetensors (or the .pth files) from the "
    "model hub repository madebyollin/taesd and pass their directory with --taesd"
)
ORIGINAL_SUFFIXES = (".safetensors", ".pth")
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


def build_autoencoder_tiny(config_name: str = TAESD) -> AutoencoderTiny:
    """An ``AutoencoderTiny`` built from a shipped config (weights as torch initialised them)."""
    return AutoencoderTiny.from_config(architecture_config(config_name)).eval()


def original_to_diffusers(state: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """Map ``taesd.py`` keys (``i.*``) to ``layers.i.*`` (encoder) or ``layers.(i-1).*`` (decoder).

    The original decoder starts with a parameter-free clamp at index 0, which diffusers moved
    into ``DecoderTiny.forward``; hence the shift by one.
    """
    shift = {"encoder": 0, "decoder": 1}[part]
    converted = {}
    for key, value in state.items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or int(index) < shift:
            raise WeightsFormatError(f"unexpected key {key!r} in an original-layout TAESD {part}")
        converted[f"layers.{int(index) - shift}.{rest}"] = value
    return converted


def _load_part(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise WeightsFormatError(f"{what} does not fit the TAESD architecture: {error}") from None
    if result.missing_keys or result.unexpected_keys:
        raise WeightsFormatError(
            f"{what} does not fit the TAESD architecture: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def _find_original(directory: Path, part: str) -> Path | None:
    for suffix in ORIGINAL_SUFFIXES:
        candidate = directory / f"taesd_{part}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def load_taesd(
    path: str | Path, *, config_name: str = TAESD, need_encoder: bool = False
) -> AutoencoderTiny:
    """TAESD from a diffusers folder, a directory of original files, or a ``taesd_decoder`` file.

    Without an encoder file the returned model has ``encoder = None`` (generation needs only
    the decoder); ``need_encoder=True`` makes its absence an error.
    """
    path = Path(path)
    model = build_autoencoder_tiny(config_name)
    if path.is_dir() and (path / DIFFUSERS_WEIGHTS).is_file():
        _load_part(model, read_state_dict(path / DIFFUSERS_WEIGHTS), f"diffusers TAESD {path}")
        return model
    if path.is_dir():
        decoder_file = _find_original(path, "decoder")
        encoder_file = _find_original(path, "encoder")
        if decoder_file is None:
            raise WeightsNotFoundError(path / "taesd_decoder.safetensors", TAESD_HOW_TO_OBTAIN)
    elif path.is_file():
        decoder_file = path
        sibling = path.with_name(path.name.replace("decoder", "encoder"))
        encoder_file = sibling if sibling != path and sibling.is_file() else None
    else:
        raise WeightsNotFoundError(path, TAESD_HOW_TO_OBTAIN)
    _load_part(
        model.decoder,
        original_to_diffusers(read_state_dict(decoder_file), "decoder"),
        str(decoder_file),
    )
    if encoder_file is not None:
        _load_part(
            model.encoder,
            original_to_diffusers(read_state_dict(encoder_file), "encoder"),
            str(encoder_file),
        )
    elif need_encoder:
        raise WeightsNotFoundError(
            decoder_file.with_name("taesd_encoder.safetensors"), TAESD_HOW_TO_OBTAIN
        )
    else:
        model.encoder = None
    return model
