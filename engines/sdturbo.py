"""SD-Turbo UNet and SD VAE from shipped configs and local weights (single-file LDM or diffusers folder).

No hub access: the architecture always comes from ``engines/configs``; diffusers'
``convert_ldm_*_checkpoint`` functions only rename keys. Loading is strict both ways:
every parameter of the model is filled and every tensor of the file under the
component's prefix is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from torch import nn

from engines.errors import WeightsFormatError, WeightsNotFoundError
from engines.model_configs import SDTURBO_UNET, SDTURBO_VAE, architecture_config
from engines.weight_files import read_state_dict

SDTURBO_HOW_TO_OBTAIN = (
    "get sd_turbo.safetensors (single file, original LDM layout) or the diffusers folder from "
    "the model hub repository stabilityai/sd-turbo and pass it with --weights"
)
LDM_UNET_PREFIX = "model.diffusion_model."
LDM_VAE_PREFIX = "first_stage_model."
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


def build_unet(config_name: str = SDTURBO_UNET) -> UNet2DConditionModel:
    """A UNet built from a shipped config (weights as torch initialised them)."""
    return UNet2DConditionModel.from_config(architecture_config(config_name)).eval()


def build_vae(config_name: str = SDTURBO_VAE) -> AutoencoderKL:
    """The SD KL-f8 VAE built from a shipped config."""
    return AutoencoderKL.from_config(architecture_config(config_name)).eval()


def _storage_key(tensor: torch.Tensor) -> int:
    # Converters may reshape (view) a tensor; its storage still identifies the source tensor.
    return tensor.untyped_storage().data_ptr()


def load_strict(
    model: nn.Module, source: dict[str, torch.Tensor], converted: dict, what: str
) -> None:
    """Load ``converted`` into ``model``; fail unless every model key is filled and every source tensor used."""
    holes = sorted(key for key, value in converted.items() if value is None)
    used = {_storage_key(value) for value in converted.values() if value is not None}
    unused = sorted(key for key, value in source.items() if _storage_key(value) not in used)
    # float32 like every freshly built model; assign=True also fills models built on "meta".
    tensors = {
        k: v.float() if v.is_floating_point() else v for k, v in converted.items() if v is not None
    }
    try:
        result = model.load_state_dict(tensors, strict=False, assign=True)
    except RuntimeError as error:  # shape mismatches
        raise WeightsFormatError(
            f"{what} does not match the shipped architecture: {error}"
        ) from None
    problems = []
    if result.missing_keys or holes:
        problems.append(
            f"missing {len(result.missing_keys) + len(holes)} (e.g. {(result.missing_keys + holes)[:3]})"
        )
    if result.unexpected_keys:
        problems.append(
            f"unexpected {len(result.unexpected_keys)} (e.g. {result.unexpected_keys[:3]})"
        )
    if unused:
        problems.append(f"{len(unused)} tensors of the file unused (e.g. {unused[:3]})")
    if problems:
        raise WeightsFormatError(
            f"{what} does not match the shipped architecture: " + "; ".join(problems)
        )


def _diffusers_weights(path: Path, subfolder: str) -> Path | None:
    for candidate in (path / subfolder / DIFFUSERS_WEIGHTS, path / DIFFUSERS_WEIGHTS):
        if candidate.is_file():
            return candidate
    return None


def _load_component(
    build: Callable[[], nn.Module],
    path: str | Path,
    *,
    subfolder: str,
    prefix: str,
    convert: Callable[[dict, dict], dict],
    config: dict,
) -> nn.Module:
    path = Path(path)
    if path.is_dir():
        weights = _diffusers_weights(path, subfolder)
        if weights is None:
            raise WeightsNotFoundError(path / subfolder / DIFFUSERS_WEIGHTS, SDTURBO_HOW_TO_OBTAIN)
        source = read_state_dict(weights)
        converted, what = dict(source), f"diffusers {subfolder} {weights}"
    elif path.is_file():
        source = read_state_dict(path, prefix)
        if not source:
            raise WeightsFormatError(
                f"{path} has no tensors under {prefix!r}: not an LDM-layout checkpoint"
            )
        converted, what = convert(dict(source), config), f"LDM checkpoint {path} ({prefix}*)"
    else:
        raise WeightsNotFoundError(path, SDTURBO_HOW_TO_OBTAIN)
    # Built on the meta device: no time spent on random initial values that the load replaces.
    with torch.device("meta"):
        model = build()
    load_strict(model, source, converted, what)
    return model


def load_unet(path: str | Path, config_name: str = SDTURBO_UNET) -> UNet2DConditionModel:
    """UNet from ``sd_turbo.safetensors`` (LDM keys) or a diffusers folder (``unet/`` inside or itself)."""
    config = architecture_config(config_name)
    return _load_component(
        lambda: build_unet(config_name),
        path,
        subfolder="unet",
        prefix=LDM_UNET_PREFIX,
        convert=lambda state, cfg: convert_ldm_unet_checkpoint(state, cfg),
        config=config,
    )


def load_vae(path: str | Path, config_name: str = SDTURBO_VAE) -> AutoencoderKL:
    """SD VAE from the same single file (``first_stage_model.*``) or a diffusers folder (``vae/``)."""
    config = architecture_config(config_name)
    return _load_component(
        lambda: build_vae(config_name),
        path,
        subfolder="vae",
        prefix=LDM_VAE_PREFIX,
        convert=lambda state, cfg: convert_ldm_vae_checkpoint(state, cfg),
        config=config,
    )
