"""The generators and backends a user can name: the one table every command's options read.

Torch-free, so that ``promptus --help`` and argument parsing stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.model_configs import (
    NANO_AUTOENCODER,
    NANO_UNET,
    SDTURBO_UNET,
    TAESD,
    TINY_AUTOENCODER,
    TINY_UNET,
)
from prompts.stream_model import SD_LATENT, LatentGeometry

NANO_LATENT = LatentGeometry(channels=8, factor=4)  # nano's own latents: 8 x H/4 x W/4


@dataclass(frozen=True)
class Variant:
    """What a generator name stands for."""

    family: str  # prefix of the generator id
    display_name: str  # manifest "generator.name"
    unet_config: str
    decoder_config: str
    native_size: tuple[int, int]  # (H, W) the generator is meant to run at
    needs_weights: bool  # --weights (a UNet checkpoint) is required
    needs_taesd: bool  # --taesd (the TAESD folder) is required
    summary: str  # one line for --help and for pages
    float32_only: bool = False  # runs in float32 on every device, whatever dtype is asked for
    seeded_weights: bool = False  # its UNet is seeded random weights: pictures carry no meaning
    latent: LatentGeometry = SD_LATENT  # its latents' channels and pixels per cell
    channels_last: bool = False  # runs in channels-last memory format wherever it runs


VARIANTS: dict[str, Variant] = {
    # The CPU default: widths and size chosen so two CPU cores generate >= 30 fps (docs/engines.md).
    "tiny": Variant(
        "tiny", "tiny", TINY_UNET, TINY_AUTOENCODER, (192, 192), False, False,
        "seeded random weights, CPU, no download (pictures carry no meaning)",
        seeded_weights=True,
    ),
    # Tiny UNet + the real TAESD decoder: real decoding for tests, too slow for real time on CPU.
    "tiny-taesd": Variant(
        "tiny-taesd", "tiny + taesd", TINY_UNET, TAESD, (256, 256), False, True,
        "tiny UNet + the real TAESD decoder (needs --taesd)",
        seeded_weights=True,
    ),
    "sd-turbo": Variant(
        "sd-turbo", "sd-turbo + taesd", SDTURBO_UNET, TAESD, (512, 512), True, True,
        "SD-Turbo UNet + TAESD, the production generator (needs --weights and --taesd, a GPU)",
    ),
    # Trained here (docs/engines.md, "The nano generator"); weights ship with the project. Its step
    # recovers the previous latent from the mixed input (a division by w = 0.05), which half
    # precision cannot carry: float32 everywhere. Channels-last convolutions: 80 against 58 fps
    # on two CPU cores at 192x192 (docs/engines.md).
    "nano": Variant(
        "nano", "nano", NANO_UNET, NANO_AUTOENCODER, (192, 192), False, False,
        "small step + decoder trained here, shipped weights, real pictures on the CPU",
        float32_only=True, latent=NANO_LATENT, channels_last=True,
    ),
}  # fmt: skip
DEFAULT_GENERATOR = "tiny"  # every command's default: runs anywhere, nothing to download

BACKEND_KINDS = ("auto", "torch", "fast", "tensorrt")
DEFAULT_BACKEND = "auto"  # TensorRT when installed, else the compiled PyTorch path, on CUDA
# Frames per UNet call: a longer generation group runs in slices of this many, so memory stays
# bounded whatever a stream's keyframe interval. Real groups (intervals of 5-10 frames) fit one.
DEFAULT_MAX_BATCH = 16
