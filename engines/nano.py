"""The nano generator's networks: a small UNet step with cross-attention and its own autoencoder.

The UNet keeps SD-Turbo's interface (the mixed latent ``w * prev + (1 - w) * noise`` and the
77x1024 context in, epsilon at t=999 out, x0 by the shared fp32 rule), but it knows the
stream's fixed noise: it recovers ``prev`` from its input exactly, adds Fourier position
channels, predicts ``x0 = prev + delta(prev, position, context)`` with a diffusers
``UNet2DConditionModel`` and hands that back as the epsilon which the x0 rule turns into
``x0`` again. The previous frame then carries the picture and the prompt carries the change.

The autoencoder maps RGB to the stream's 4-channel, 1/8-size latents and back; its decoder does
its work at 1/2 size and reaches full size by a pixel shuffle, which keeps two CPU cores above
30 frames a second at 192x192 (docs/engines.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engines.model_configs import NANO_AUTOENCODER, NANO_UNET, architecture_config
from engines.schedule import ONE_STEP_TIMESTEP, X0_EPS_SCALE, X0_INPUT_SCALE, stream_noise
from prompts.stream_model import LATENT_CHANNELS, LATENT_FACTOR, NOISE_SEED, PREV_LATENT_WEIGHT

POSITION_FREQUENCIES = (1.0, 2.0, 4.0)  # sin/cos of pi*f*x and pi*f*y, x and y in [-1, 1]
POSITION_CHANNELS = 4 * len(POSITION_FREQUENCIES)


def position_channels(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[1, POSITION_CHANNELS, height, width]`` Fourier features of the cell centres."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    features = []
    for frequency in POSITION_FREQUENCIES:
        for grid in (grid_x, grid_y):
            features += [
                torch.sin(math.pi * frequency * grid),
                torch.cos(math.pi * frequency * grid),
            ]
    return torch.stack(features)[None]


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a ReLU between them, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class NanoDecoder(nn.Module):
    """Latent ``[B, 4, h, w]`` -> image ``[B, 3, 8h, 8w]`` in about [-1, 1].

    Levels at 1, 2 and 4 times the latent size (``channels[i]`` wide, ``blocks[i]`` residual
    blocks each, pixel-shuffle upsampling between them); a last convolution makes the 2x2
    sub-pixels of the full-size image.
    """

    def __init__(self, channels: list[int], blocks: list[int]) -> None:
        super().__init__()
        if len(channels) != 3 or len(blocks) != 3:
            raise ValueError("the nano decoder has three levels (1x, 2x, 4x the latent size)")
        layers: list[nn.Module] = [nn.Conv2d(LATENT_CHANNELS, channels[0], 3, padding=1), nn.ReLU()]
        for level, (width, count) in enumerate(zip(channels, blocks, strict=True)):
            layers += [ResidualBlock(width) for _ in range(count)]
            if level < 2:
                layers += [
                    nn.Conv2d(width, 4 * channels[level + 1], 3, padding=1),
                    nn.PixelShuffle(2),
                    nn.ReLU(),
                ]
        layers += [nn.Conv2d(channels[2], 3 * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.layers = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)


class NanoEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` in [-1, 1] -> latent ``[B, 4, H/8, W/8]``: the decoder's mirror."""

    def __init__(self, channels: list[int], blocks: list[int]) -> None:
        super().__init__()
        if len(channels) != 3 or len(blocks) != 3:
            raise ValueError("the nano encoder has three levels (4x, 2x, 1x the latent size)")
        layers: list[nn.Module] = [
            nn.PixelUnshuffle(2),
            nn.Conv2d(3 * 4, channels[2], 3, padding=1),
            nn.ReLU(),
        ]
        for level in (2, 1, 0):
            layers += [ResidualBlock(channels[level]) for _ in range(blocks[level])]
            if level > 0:
                layers += [
                    nn.Conv2d(channels[level], channels[level - 1], 3, stride=2, padding=1),
                    nn.ReLU(),
                ]
        layers += [nn.Conv2d(channels[0], LATENT_CHANNELS, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class NanoAutoencoder(nn.Module):
    """Encoder and decoder of the nano latent space (``encoder`` may be dropped for generation)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.encoder: NanoEncoder | None = NanoEncoder(
            config["encoder_channels"], config["encoder_blocks"]
        )
        self.decoder = NanoDecoder(config["decoder_channels"], config["decoder_blocks"])


class NanoUNet(nn.Module):
    """A UNet call (``unet(sample, t, encoder_hidden_states=c, return_dict=False)[0]`` is epsilon)
    that predicts x0 as a residual on the previous latent it recovers from its input."""

    def __init__(self, core: nn.Module, *, noise_seed: int, prev_latent_weight: float) -> None:
        super().__init__()
        if not 0.0 < prev_latent_weight < 1.0:
            raise ValueError(
                f"the nano UNet needs 0 < prev_latent_weight < 1, got {prev_latent_weight}"
            )
        self.core = core
        self.noise_seed = noise_seed
        self.prev_latent_weight = prev_latent_weight
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _fixed_inputs(self, sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stream noise, position channels) for this latent size, on the sample's device."""
        _, _, height, width = sample.shape
        key = (height, width, sample.device)
        if key not in self._cache:
            noise = stream_noise(self.noise_seed, height * LATENT_FACTOR, width * LATENT_FACTOR)
            self._cache[key] = (
                torch.from_numpy(np.ascontiguousarray(noise)).to(sample.device),
                position_channels(height, width, sample.device),
            )
        return self._cache[key]

    def unmix(self, sample: torch.Tensor) -> torch.Tensor:
        """``prev`` from ``w * prev + (1 - w) * noise`` (float32; exact up to rounding)."""
        noise, _ = self._fixed_inputs(sample)
        weight = self.prev_latent_weight
        return (sample.float() - (1.0 - weight) * noise) / weight

    def predict_x0(self, prev: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x0 from the previous latent and the context (the part training optimises)."""
        _, positions = self._fixed_inputs(prev)
        features = torch.cat([prev, positions.expand(prev.shape[0], -1, -1, -1)], 1)
        timestep = torch.full(
            (prev.shape[0],), ONE_STEP_TIMESTEP, device=prev.device, dtype=torch.long
        )
        delta = self.core(features, timestep, encoder_hidden_states=context, return_dict=False)[0]
        return prev + delta.float()

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Any = None,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = False,
    ) -> tuple[torch.Tensor]:
        assert encoder_hidden_states is not None, "the nano UNet needs a context"
        prev = self.unmix(sample)
        x0 = self.predict_x0(prev, encoder_hidden_states.float())
        # The epsilon whose x0 rule (x0 = a * sample - b * eps) gives back this x0.
        eps = (X0_INPUT_SCALE * sample.float() - x0) / X0_EPS_SCALE
        return (eps,)


NANO_WEIGHTS = Path(__file__).with_name("weights") / "nano.safetensors"
NANO_HOW_TO_OBTAIN = (
    "the nano weights ship with the project (engines/weights/nano.safetensors); retrain them with "
    "scripts/train_nano.py (docs/engines.md, 'The nano generator')"
)
# Weight-file prefixes of the three networks.
UNET_PREFIX, DECODER_PREFIX, ENCODER_PREFIX = "unet.", "decoder.", "encoder."


def build_nano_unet(
    noise_seed: int = NOISE_SEED, prev_latent_weight: float = PREV_LATENT_WEIGHT
) -> NanoUNet:
    """The nano UNet with torch's initial weights, its output layer zeroed (x0 = prev at first)."""
    from diffusers import UNet2DConditionModel

    core = UNet2DConditionModel.from_config(architecture_config(NANO_UNET))
    nn.init.zeros_(core.conv_out.weight)
    nn.init.zeros_(core.conv_out.bias)
    return NanoUNet(core, noise_seed=noise_seed, prev_latent_weight=prev_latent_weight)


def build_nano_autoencoder() -> NanoAutoencoder:
    """The nano autoencoder with torch's initial weights."""
    return NanoAutoencoder(architecture_config(NANO_AUTOENCODER))


def nano_state_dict(unet: NanoUNet, autoencoder: NanoAutoencoder) -> dict[str, torch.Tensor]:
    """Every weight under its file key (``unet.``, ``decoder.``, ``encoder.``)."""
    state = {UNET_PREFIX + k: v for k, v in unet.core.state_dict().items()}
    state |= {DECODER_PREFIX + k: v for k, v in autoencoder.decoder.state_dict().items()}
    if autoencoder.encoder is not None:
        state |= {ENCODER_PREFIX + k: v for k, v in autoencoder.encoder.state_dict().items()}
    return state


def load_nano(path: str | Path = NANO_WEIGHTS) -> tuple[NanoUNet, NanoAutoencoder]:
    """The nano UNet and autoencoder from a weight file, strictly (float32 whatever the file holds)."""
    from engines.errors import WeightsFormatError, WeightsNotFoundError
    from engines.weight_files import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(path, NANO_HOW_TO_OBTAIN)
    state = {k: v.float() for k, v in read_state_dict(path).items()}
    unet, autoencoder = build_nano_unet(), build_nano_autoencoder()
    parts = (
        (unet.core, UNET_PREFIX),
        (autoencoder.decoder, DECODER_PREFIX),
        (autoencoder.encoder, ENCODER_PREFIX),
    )
    used = 0
    for module, prefix in parts:
        part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as error:
            raise WeightsFormatError(
                f"{path} does not fit the nano architecture: {error}"
            ) from None
        used += len(part)
    if used != len(state):
        raise WeightsFormatError(
            f"{path} holds {len(state) - used} tensors the nano architecture does not have"
        )
    return unet.eval(), autoencoder.eval()
