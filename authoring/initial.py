"""The stream's initial latent: the generator's TAESD encoding of frame 0, or (the paper preset)
a sample of the SD VAE's posterior of frame 0, as the original release makes it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from authoring.source import frames_to_tensor


def initial_latent(generator: Any, frame: np.ndarray) -> np.ndarray:
    """The generator's ``float32`` latent of a ``uint8 [H, W, 3]`` frame (``[1, 4, H/8, W/8]``
    for SD's geometry; ``generator.latent_geometry`` in general).

    Without encoder weights (a ``--taesd`` holding only the decoder) the stream starts from a
    zero latent instead; that is a valid stream, only the first frames' fit starts farther off.
    """
    from engines import WeightsNotFoundError

    image = frames_to_tensor(frame[None])
    try:
        latent = generator.encode(image)
    except WeightsNotFoundError:
        height, width = frame.shape[:2]
        print(
            "note: no TAESD encoder weights; the stream starts from a zero latent", file=sys.stderr
        )
        return np.zeros(generator.latent_geometry.shape(width, height), np.float32)
    return latent.detach().float().cpu().numpy().astype(np.float32)


def vae_posterior_latent(vae: Any, frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """The original release's initial latent: ``scaling_factor`` (0.18215 for SD 2.x) times a
    sample of the SD VAE's posterior of a ``uint8 [H, W, 3]`` frame, drawn with a CPU
    generator seeded by ``seed``. Returns ``float32 [1, 4, H/8, W/8]``."""
    import torch

    parameter = next(vae.parameters())
    image = frames_to_tensor(frame[None])
    with torch.no_grad():
        posterior = vae.encode(image.to(parameter.device, parameter.dtype)).latent_dist
        sample = posterior.sample(generator=torch.Generator().manual_seed(seed))
    latent = float(vae.config.scaling_factor) * sample.float()
    return latent.cpu().numpy().astype(np.float32)


def sd_vae_initial_latent(
    weights: str | Path | None,
    frame: np.ndarray,
    seed: int = 0,
    device: str = "cpu",
    config_name: str | None = None,
) -> np.ndarray | None:
    """``vae_posterior_latent`` with the SD VAE of the generator's weights (``sd_turbo.safetensors``,
    ``first_stage_model.*``, or a diffusers folder's ``vae/``); None when they hold no VAE.
    ``config_name``: the shipped VAE config (default SD-Turbo's)."""
    from engines.errors import WeightsFormatError, WeightsNotFoundError
    from engines.model_configs import SDTURBO_VAE
    from engines.sdturbo import load_vae

    if weights is None:
        return None
    try:
        vae = load_vae(weights, config_name or SDTURBO_VAE).to(device).eval()
    except (WeightsNotFoundError, WeightsFormatError):
        return None
    return vae_posterior_latent(vae, frame, seed)
