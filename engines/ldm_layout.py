"""diffusers -> original LDM key layout, the inverse of diffusers' ``convert_ldm_*_checkpoint``.

Used to write LDM-layout checkpoints with seeded values (``scripts/make_ldm_checkpoint.py``),
which prove the single-file loader without the real SD-Turbo weights. Tests check that
diffusers' converters map every key written here back to its origin.
"""

from __future__ import annotations

import torch

_UNET_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_TOP = {
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_norm_out": "decoder.norm_out",
}
_VAE_ATTENTION = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


def _rename(rest: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for new, old in pairs:
        if rest.startswith(new):
            return old + rest[len(new) :]
    return rest


def _unet_key(key: str, config: dict) -> str:
    per_block = config["layers_per_block"] + 1  # resnets (+ attentions) then a down/upsampler
    parts = key.split(".")
    for prefix, ldm in _UNET_TOP.items():
        if key.startswith(prefix + "."):
            return ldm + key[len(prefix) :]
    if parts[0] == "mid_block":
        index = {"resnets": 2 * int(parts[2]), "attentions": 1}[parts[1]]
        rest = ".".join(parts[3:])
        return f"middle_block.{index}." + (
            _rename(rest, _UNET_RESNET) if parts[1] == "resnets" else rest
        )
    block, kind = int(parts[1]), parts[2]
    rest = ".".join(parts[4:])
    if parts[0] == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{per_block * (block + 1)}.0.op.{rest.removeprefix('conv.')}"
        layer = f"input_blocks.{per_block * block + int(parts[3]) + 1}"
    else:
        if kind == "upsamplers":
            has_attention = config["up_block_types"][block].startswith("CrossAttn")
            return f"output_blocks.{per_block * block + per_block - 1}.{2 if has_attention else 1}.{rest}"
        layer = f"output_blocks.{per_block * block + int(parts[3])}"
    return f"{layer}.0.{_rename(rest, _UNET_RESNET)}" if kind == "resnets" else f"{layer}.1.{rest}"


def unet_to_ldm(
    state: dict[str, torch.Tensor], config: dict, prefix: str = "model.diffusion_model."
) -> dict:
    """A diffusers UNet state dict under LDM names (``input_blocks``, ``middle_block``, ...)."""
    return {prefix + _unet_key(key, config): value for key, value in state.items()}


def _vae_key(key: str, config: dict) -> str:
    blocks = len(config["up_block_types"])
    for prefix, ldm in _VAE_TOP.items():
        if key.startswith(prefix + "."):
            return ldm + key[len(prefix) :]
    parts = key.split(".")
    if len(parts) < 3 or parts[1] not in ("down_blocks", "up_blocks", "mid_block"):
        return key  # conv_in, conv_out, quant_conv, post_quant_conv keep their names
    side = parts[0]
    if parts[1] == "mid_block":
        rest = ".".join(parts[4:])
        if parts[2] == "attentions":
            return f"{side}.mid.attn_1.{_rename(rest, _VAE_ATTENTION)}"
        return (
            f"{side}.mid.block_{int(parts[3]) + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        )
    block = int(parts[2]) if parts[1] == "down_blocks" else blocks - 1 - int(parts[2])
    level = f"{side}.{'down' if parts[1] == 'down_blocks' else 'up'}.{block}"
    rest = ".".join(parts[5:])
    if parts[3] == "resnets":
        return f"{level}.block.{parts[4]}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
    return f"{level}.{'downsample' if parts[1] == 'down_blocks' else 'upsample'}.{rest}"


def vae_to_ldm(
    state: dict[str, torch.Tensor], config: dict, prefix: str = "first_stage_model."
) -> dict:
    """A diffusers AutoencoderKL state dict under LDM names; attention projections as 1x1 convs."""
    out = {}
    for key, value in state.items():
        ldm = _vae_key(key, config)
        if ".mid.attn_1." in ldm and ldm.endswith("weight") and value.dim() == 2:
            value = value[:, :, None, None]  # LDM stores these as 1x1 convolutions
        out[prefix + ldm] = value
    return out


def seeded_ldm_state(
    unet_config_name: str, vae_config_name: str, seed: int, dtype: torch.dtype
) -> dict:
    """UNet + VAE with seeded weights (``engines.seeded``), as one LDM-layout state dict."""
    from engines.model_configs import architecture_config
    from engines.sdturbo import build_unet, build_vae
    from engines.seeded import fill_seeded_

    state = {}
    for build, name, to_ldm in (
        (build_unet, unet_config_name, unet_to_ldm),
        (build_vae, vae_config_name, vae_to_ldm),
    ):
        module = fill_seeded_(build(name), seed)
        converted = to_ldm(module.state_dict(), architecture_config(name))
        state.update({key: value.to(dtype).contiguous() for key, value in converted.items()})
        del module
    return state
