"""The nano generator's networks: a small convolutional step that reads the prompt as a picture,
and its own autoencoder.

The step keeps SD-Turbo's interface (the mixed latent ``w * prev + (1 - w) * noise`` and the
77x1024 context in, epsilon at t=999 out, x0 by the shared fp32 rule), but it reads the context
differently: each of its 77 rows is taken as a ``CONTEXT_GRID`` x ``CONTEXT_GRID`` map laid over
the frame (1024 = 32 x 32). A rank-r prompt ``U V / sqrt(r)`` is then r spatial maps (the rows of
V) mixed into 77 channels by U, so the prompt is a low-resolution picture of the keyframe's
content: more rank, more maps, more detail. The step recovers ``prev`` from its input exactly
(it knows the stream's fixed noise), reads the maps and predicts ``x0 = prev + delta``.

The autoencoder maps RGB to nano's own latent geometry (``NANO_LATENT``: 8 channels at 1/4
size, declared by the variant) and back; the decoder reaches full size by two pixel shuffles,
which keeps two CPU cores well above 30 frames a second at 192x192 (docs/engines.md).
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
from engines.schedule import X0_EPS_SCALE, X0_INPUT_SCALE, stream_noise, unmix_latent
from engines.variants import NANO_LATENT
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS, NOISE_SEED, PREV_LATENT_WEIGHT

CONTEXT_GRID = math.isqrt(CONTEXT_DIM)  # each context row is a 32x32 map over the frame
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


def context_maps(context: torch.Tensor) -> torch.Tensor:
    """Context ``[B, 77, 1024]`` -> ``[B, 77, 32, 32]``: each row as a map over the frame."""
    return context.reshape(context.shape[0], CONTEXT_TOKENS, CONTEXT_GRID, CONTEXT_GRID)


def resize(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of a feature map to ``size`` (antialiased when it shrinks)."""
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    shrinks = size[0] < features.shape[-2] or size[1] < features.shape[-1]
    # Antialiased resampling has float32 kernels only (bfloat16 under autocast has none).
    resized = F.interpolate(
        features.float(), size=size, mode="bilinear", align_corners=False, antialias=shrinks
    )
    return resized.to(features.dtype)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a ReLU between them, added to the input. The second starts at
    zero, so a new block is the identity: a trained network grown by blocks keeps its function
    and training continues from it (scripts/train_nano.py --resume)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        assert self.conv2.bias is not None  # a Conv2d has a bias unless built without one
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(count)])


class NanoStep(nn.Module):
    """``(prev [B, C, h, w], context [B, 77, 1024]) -> x0 [B, C, h, w]``.

    Two resolutions: the latent's own (``skip_channels`` wide) and half of it (``mid_channels``,
    ``mid_blocks`` residual blocks). The context maps are read at their 32x32 grid
    (``context_channels``), upsampled to 64x64 by a learned pixel shuffle for the full-size path
    and resampled onto the half-size one, so the prompt reaches the full-size path directly and
    the half-size path with room to combine it with ``prev``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        channels, skip, mid = (
            config["latent_channels"],
            config["skip_channels"],
            config["mid_channels"],
        )
        ctx = config["context_channels"]
        self.latent_in = nn.Conv2d(channels + POSITION_CHANNELS, skip, 3, padding=1)
        self.latent_block = ResidualBlock(skip)
        self.context_in = nn.Conv2d(CONTEXT_TOKENS, ctx, 1)
        self.context_blocks = _blocks(ctx, config["context_blocks"])
        # The maps reach the full-size path through a learned 2x upsampling (sub-cell detail
        # that several maps describe together), then a resampling onto the latent grid.
        self.context_up = nn.Conv2d(ctx, 4 * skip, 3, padding=1)
        self.down = nn.Conv2d(skip, mid - ctx, 3, stride=2, padding=1)
        self.mix = nn.Conv2d(mid, mid, 3, padding=1)
        self.mid_blocks = _blocks(mid, config["mid_blocks"])
        self.up = nn.Conv2d(mid, 4 * skip, 3, padding=1)
        self.out_block = ResidualBlock(skip)
        self.latent_out = nn.Conv2d(skip, channels, 3, padding=1)
        nn.init.zeros_(self.latent_out.weight)  # x0 = prev until trained
        assert self.latent_out.bias is not None
        nn.init.zeros_(self.latent_out.bias)
        self._positions: dict[tuple[object, ...], torch.Tensor] = {}

    def positions(self, like: torch.Tensor) -> torch.Tensor:
        height, width = like.shape[-2:]
        key = (height, width, like.device, like.dtype)
        if key not in self._positions:
            self._positions[key] = position_channels(height, width, like.device).to(like.dtype)
        return self._positions[key]

    def forward(self, prev: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = prev.shape
        if height % 2 or width % 2:
            raise ValueError(f"the nano step needs an even latent size, got {height}x{width}")
        positions = self.positions(prev).expand(batch, -1, -1, -1)
        full = F.relu(self.latent_in(torch.cat([prev, positions], 1)))
        maps = self.context_blocks(F.relu(self.context_in(context_maps(context).to(prev.dtype))))
        fine = F.pixel_shuffle(self.context_up(maps), 2)  # [B, skip, 64, 64]
        full = self.latent_block(full + resize(fine, (height, width)))
        half = F.relu(self.down(full))
        half = torch.cat([half, resize(maps, (half.shape[-2], half.shape[-1]))], 1)
        half = self.mid_blocks(F.relu(self.mix(half)))
        full = full + F.relu(F.pixel_shuffle(self.up(half), 2))
        return prev + self.latent_out(self.out_block(full))


class NanoDecoder(nn.Module):
    """Latent ``[B, C, h, w]`` -> image ``[B, 3, 4h, 4w]`` in about [-1, 1].

    Levels at 1 and 2 times the latent size (``channels[i]`` wide, ``blocks[i]`` residual blocks),
    a pixel shuffle between them and a last convolution that makes the 2x2 sub-pixels of the
    full-size image: no convolution runs at full size.
    """

    def __init__(self, latent_channels: int, channels: list[int], blocks: list[int]) -> None:
        super().__init__()
        if len(channels) != 2 or len(blocks) != 2:
            raise ValueError("the nano decoder has two levels (1x, 2x the latent size)")
        self.layers = nn.Sequential(
            nn.Conv2d(latent_channels, channels[0], 3, padding=1), nn.ReLU(),
            _blocks(channels[0], blocks[0]),
            nn.Conv2d(channels[0], 4 * channels[1], 3, padding=1), nn.PixelShuffle(2), nn.ReLU(),
            _blocks(channels[1], blocks[1]),
            nn.Conv2d(channels[1], 3 * 4, 3, padding=1), nn.PixelShuffle(2),
        )  # fmt: skip

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)


class NanoEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` in [-1, 1] -> latent ``[B, C, H/4, W/4]``: the decoder's mirror."""

    def __init__(self, latent_channels: int, channels: list[int], blocks: list[int]) -> None:
        super().__init__()
        if len(channels) != 2 or len(blocks) != 2:
            raise ValueError("the nano encoder has two levels (2x, 1x the latent size)")
        self.layers = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(3 * 4, channels[1], 3, padding=1), nn.ReLU(),
            _blocks(channels[1], blocks[1]),
            nn.Conv2d(channels[1], channels[0], 3, stride=2, padding=1), nn.ReLU(),
            _blocks(channels[0], blocks[0]),
            nn.Conv2d(channels[0], latent_channels, 3, padding=1),
        )  # fmt: skip

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class NanoAutoencoder(nn.Module):
    """Encoder and decoder of the nano latent space (``encoder`` may be dropped for generation)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        channels = config["latent_channels"]
        self.encoder: NanoEncoder | None = NanoEncoder(
            channels, config["encoder_channels"], config["encoder_blocks"]
        )
        self.decoder = NanoDecoder(channels, config["decoder_channels"], config["decoder_blocks"])


class NanoUNet(nn.Module):
    """A UNet call (``unet(sample, t, encoder_hidden_states=c, return_dict=False)[0]`` is epsilon)
    that predicts x0 as a residual on the previous latent it recovers from its input."""

    def __init__(self, core: NanoStep, *, noise_seed: int, prev_latent_weight: float) -> None:
        super().__init__()
        if not 0.0 < prev_latent_weight < 1.0:
            raise ValueError(
                f"the nano UNet needs 0 < prev_latent_weight < 1, got {prev_latent_weight}"
            )
        self.core = core
        self.noise_seed = noise_seed
        self.prev_latent_weight = prev_latent_weight
        self._noise: dict[tuple, torch.Tensor] = {}

    def noise(self, sample: torch.Tensor) -> torch.Tensor:
        """The stream noise for this latent size, on the sample's device."""
        _, _, height, width = sample.shape
        key = (height, width, sample.device)
        if key not in self._noise:
            factor = NANO_LATENT.factor
            noise = stream_noise(self.noise_seed, height * factor, width * factor, NANO_LATENT)
            self._noise[key] = torch.from_numpy(np.ascontiguousarray(noise)).to(sample.device)
        return self._noise[key]

    def unmix(self, sample: torch.Tensor) -> torch.Tensor:
        """``prev`` from ``w * prev + (1 - w) * noise`` (float32; exact up to rounding)."""
        return unmix_latent(sample, self.noise(sample), self.prev_latent_weight)

    def predict_x0(self, prev: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x0 from the previous latent and the context (the part training optimises)."""
        return self.core(prev, context).float()

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


def _config(name: str) -> dict[str, Any]:
    config = architecture_config(name)
    if config["latent_channels"] != NANO_LATENT.channels:
        raise ValueError(f"engines/configs/{name}.json disagrees with NANO_LATENT's channels")
    return config


def build_nano_unet(
    noise_seed: int = NOISE_SEED, prev_latent_weight: float = PREV_LATENT_WEIGHT
) -> NanoUNet:
    """The nano step with torch's initial weights, its output layer zeroed (x0 = prev at first)."""
    return NanoUNet(
        NanoStep(_config(NANO_UNET)), noise_seed=noise_seed, prev_latent_weight=prev_latent_weight
    )


def build_nano_autoencoder() -> NanoAutoencoder:
    """The nano autoencoder with torch's initial weights."""
    return NanoAutoencoder(_config(NANO_AUTOENCODER))


def nano_state_dict(unet: NanoUNet, autoencoder: NanoAutoencoder) -> dict[str, torch.Tensor]:
    """Every weight under its file key (``unet.``, ``decoder.``, ``encoder.``)."""
    state = {UNET_PREFIX + k: v for k, v in unet.core.state_dict().items()}
    state |= {DECODER_PREFIX + k: v for k, v in autoencoder.decoder.state_dict().items()}
    if autoencoder.encoder is not None:
        state |= {ENCODER_PREFIX + k: v for k, v in autoencoder.encoder.state_dict().items()}
    return state


def load_nano_state(
    unet: NanoUNet, autoencoder: NanoAutoencoder, state: dict[str, torch.Tensor], source: Path
) -> None:
    """Copy a weight file's tensors into the networks, strictly (``WeightsFormatError`` if they
    do not fit the architecture)."""
    from engines.errors import WeightsFormatError

    parts: list[tuple[nn.Module, str]] = [
        (unet.core, UNET_PREFIX),
        (autoencoder.decoder, DECODER_PREFIX),
    ]
    if autoencoder.encoder is not None:  # as nano_state_dict: no encoder, no encoder tensors
        parts.append((autoencoder.encoder, ENCODER_PREFIX))
    used = 0
    for module, prefix in parts:
        part = {k[len(prefix) :]: v.float() for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as error:
            raise WeightsFormatError(
                f"{source} does not fit the nano architecture: {error}"
            ) from None
        used += len(part)
    if used != len(state):
        raise WeightsFormatError(
            f"{source} holds {len(state) - used} tensors the nano architecture does not have"
        )


def load_nano(path: str | Path = NANO_WEIGHTS) -> tuple[NanoUNet, NanoAutoencoder]:
    """The nano UNet and autoencoder from a weight file, strictly (float32 whatever the file holds)."""
    from engines.errors import WeightsNotFoundError
    from engines.weight_files import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(path, NANO_HOW_TO_OBTAIN)
    unet, autoencoder = build_nano_unet(), build_nano_autoencoder()
    load_nano_state(unet, autoencoder, read_state_dict(path), path)
    return unet.eval(), autoencoder.eval()
