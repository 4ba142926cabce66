"""One-step arithmetic: the stream's fixed noise, the group input mix, and the t=999 x0 rule.

The x0 constants derive from the shipped SD-Turbo scheduler config; the noise and the mix follow
the stream model (``prompts.stream_model``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engines.model_configs import SDTURBO_SCHEDULER, load_config
from prompts.stream_model import LatentGeometry

# The one timestep of one-step SD-Turbo ("trailing" spacing puts the single step at the end).
ONE_STEP_TIMESTEP = 999


def alphas_cumprod(config: dict | None = None) -> np.ndarray:
    """alpha-bar for every train timestep, in float64, from a ``scaled_linear`` schedule."""
    config = load_config(SDTURBO_SCHEDULER) if config is None else config
    if config["beta_schedule"] != "scaled_linear":
        raise ValueError(f"unsupported beta_schedule {config['beta_schedule']!r}")
    steps = int(config["num_train_timesteps"])
    betas = np.linspace(math.sqrt(config["beta_start"]), math.sqrt(config["beta_end"]), steps) ** 2
    return np.cumprod(1.0 - betas)


def x0_scales(timestep: int = ONE_STEP_TIMESTEP) -> tuple[float, float]:
    """(a, b) with x0 = a * x_t - b * eps for epsilon prediction: a = 1/sqrt(ab), b = sqrt(1-ab)/sqrt(ab)."""
    alpha_bar = float(alphas_cumprod()[timestep])
    return 1.0 / math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar) / math.sqrt(alpha_bar)


# About 14.6488 and 14.6146 (design section 2); exact float64 values from the schedule.
X0_INPUT_SCALE, X0_EPS_SCALE = x0_scales()


def x0_from_eps(latent_input: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x0 in float32 (the ~14.6x factors amplify fp16 error, so never in half precision)."""
    return X0_INPUT_SCALE * latent_input.float() - X0_EPS_SCALE * eps.float()


def stream_noise(noise_seed: int, height: int, width: int, geometry: LatentGeometry) -> np.ndarray:
    """The stream's fixed noise: RandomState(seed) normals in the latent shape of ``geometry``
    (1x4x(H/8)x(W/8) for SD's), float64 cast to float32."""
    shape = geometry.shape(width, height)
    return np.random.RandomState(noise_seed).standard_normal(shape).astype(np.float32)


def mix_latent(prev: torch.Tensor, noise: torch.Tensor, weight: float) -> torch.Tensor:
    """The UNet input of a group: ``w * prev + (1 - w) * noise`` in float32."""
    return weight * prev.float() + (1.0 - weight) * noise.float()


def unmix_latent(mixed: torch.Tensor, noise: torch.Tensor, weight: float) -> torch.Tensor:
    """``prev`` back from a group input ``mix_latent(prev, noise, weight)``, in float32 (exact up
    to rounding; a division by ``weight``, so never in half precision)."""
    return (mixed.float() - (1.0 - weight) * noise.float()) / weight
