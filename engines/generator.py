"""Generators (tiny, tiny + real TAESD decoder, SD-Turbo + TAESD) and ``load_generator``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from engines.backends import Backend, BackendOptions, make_backend
from engines.colour import RGB24
from engines.errors import WeightsNotFoundError
from engines.identity import compute_generator_id
from engines.memory import release_memory
from engines.model_configs import TINY_AUTOENCODER, TINY_UNET, architecture_config
from engines.seeded import fill_seeded_
from engines.stream import GeneratorStream
from engines.taesd import TAESD_HOW_TO_OBTAIN, build_autoencoder_tiny, load_taesd
from engines.variants import DEFAULT_MAX_BATCH, VARIANTS, Variant
from prompts.stream_model import (
    CHUNK_RESET,
    CONTEXT_DIM,
    CONTEXT_TOKENS,
    NOISE_SEED,
    PREV_LATENT_WEIGHT,
    LatentGeometry,
    check_generator,
    size_problem,
)

if TYPE_CHECKING:
    from diffusers import AutoencoderTiny

TINY_WEIGHT_SEED = 20260  # fixed seed of the tiny generator's weights (engines.seeded)


class Autoencoder(Protocol):
    """What a generator takes of an autoencoder (TAESD's or nano's): the decoder, and the encoder
    unless it was dropped."""

    @property
    def decoder(self) -> nn.Module: ...

    @property
    def encoder(self) -> nn.Module | None: ...


class Generator:
    """A UNet + TAESD-shaped decoder run once at t=999, with its identity and backend."""

    context_tokens = CONTEXT_TOKENS
    context_dim = CONTEXT_DIM

    def __init__(
        self, *, variant: Variant, generator_id: str, backend: Backend, encoder: nn.Module | None
    ) -> None:
        self.variant = variant
        self.generator_id = generator_id
        self.backend = backend
        self.encoder = encoder.to(backend.device) if encoder is not None else None

    @property
    def name(self) -> str:
        return self.variant.display_name

    @property
    def native_size(self) -> tuple[int, int]:
        return self.variant.native_size

    @property
    def latent_geometry(self) -> LatentGeometry:
        """Channels and pixels per cell of this generator's latents (init state, noise, x0)."""
        return self.variant.latent

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backend.options.dtype

    def forward(
        self, latent_input: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 [B,4,h,w] float32, image [B,3,H,W] in about [-1,1]); differentiable w.r.t. context."""
        return self.backend.forward(latent_input.to(self.device), context.to(self.device))

    @torch.inference_mode()
    def warm_up(self, width: int, height: int, frames: int, frame_format: str = RGB24) -> float:
        """Generate one group of ``frames`` at this size and wait for it; returns the seconds taken.

        A backend that compiles or captures per shape (``specialises_shapes``) does that here,
        before any viewer waits for it; shorter groups of the same size reuse it padded.
        """
        problem = size_problem(width, height)
        if problem is None and frames < 1:
            problem = "frames must be at least 1"
        if problem is not None:
            raise ValueError(f"warm-up {width}x{height}@{frames}: {problem}")
        started = time.perf_counter()
        latent = torch.zeros(self.latent_geometry.shape(width, height), device=self.device)
        frames = min(frames, self.backend.max_batch)  # streams run longer groups in such slices
        context = torch.zeros(frames, self.context_tokens, self.context_dim, device=self.device)
        _, _, images = self.backend.generate_group(latent, latent, 0.5, context, frame_format)
        images.cpu()  # waits for the device
        return time.perf_counter() - started

    @torch.inference_mode()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """TAESD-encode images [B,3,H,W] in [-1,1] to latents [B,4,H/8,W/8] (e.g. an init latent)."""
        if self.encoder is None:
            raise WeightsNotFoundError("taesd_encoder.safetensors", TAESD_HOW_TO_OBTAIN)
        encoder_param = next(self.encoder.parameters())
        return self.encoder(image.to(encoder_param.device, encoder_param.dtype)).float()

    def release_memory(self) -> None:
        """Return memory freed by a failed or abandoned generation to the system (and, on CUDA,
        PyTorch's cached blocks), so the process goes back to its idle size."""
        release_memory(self.device)

    def check_generator_id(self, generator_id: str) -> None:
        """Raise ``GeneratorMismatchError`` unless ``generator_id`` names this generator."""
        check_generator(generator_id, self.generator_id, "stream")

    def open_stream(
        self,
        *,
        width: int,
        height: int,
        init_latent: np.ndarray,
        noise_seed: int = NOISE_SEED,
        prev_latent_weight: float = PREV_LATENT_WEIGHT,
        prev_latent_rule: str = CHUNK_RESET,
        generator_id: str | None = None,
        allow_generator_mismatch: bool = False,
        frame_format: str = RGB24,
        slice_frames: int | None = None,
    ) -> GeneratorStream:
        """A stream decoder; ``generator_id`` (the manifest's) is checked here when given.

        ``frame_format`` is what its chunks come out as: ``rgb24``, or ``yuv420p`` converted on
        the device for an encoder (``engines.colour``). ``slice_frames`` (at most the backend's
        ``max_batch``, the default) is how many frames one model call of this stream is given:
        a caller that bounds the memory or time of one call at this frame size sets it lower.
        """
        if generator_id is not None and not allow_generator_mismatch:
            self.check_generator_id(generator_id)
        return GeneratorStream(
            self,
            width=width,
            height=height,
            noise_seed=noise_seed,
            prev_latent_weight=prev_latent_weight,
            prev_latent_rule=prev_latent_rule,
            init_latent=init_latent,
            allow_generator_mismatch=allow_generator_mismatch,
            frame_format=frame_format,
            slice_frames=slice_frames,
        )


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available")
    return device


def default_dtype(device: str) -> torch.dtype:
    """float32 on CPU, float16 on CUDA (x0 is float32 either way)."""
    return torch.float16 if device.startswith("cuda") else torch.float32


def build_tiny_unet() -> nn.Module:
    """The tiny UNet with its seeded, machine-independent weights."""
    from engines.sdturbo import build_unet

    return fill_seeded_(build_unet(TINY_UNET), TINY_WEIGHT_SEED)


def build_tiny_autoencoder() -> AutoencoderTiny:
    """The tiny TAESD-shaped autoencoder with seeded weights."""
    return fill_seeded_(build_autoencoder_tiny(TINY_AUTOENCODER), TINY_WEIGHT_SEED)


def _load_networks(
    name: str, weights: str | Path | None, taesd: str | Path | None
) -> tuple[nn.Module, Autoencoder]:
    if name == "tiny":
        return build_tiny_unet(), build_tiny_autoencoder()
    if name == "nano":
        from engines.nano import load_nano

        return load_nano()
    if taesd is None:
        raise WeightsNotFoundError("<--taesd not given>", TAESD_HOW_TO_OBTAIN)
    autoencoder = load_taesd(taesd)
    if name == "tiny-taesd":
        return build_tiny_unet(), autoencoder
    from engines.sdturbo import SDTURBO_HOW_TO_OBTAIN, load_unet

    if weights is None:
        raise WeightsNotFoundError("<--weights not given>", SDTURBO_HOW_TO_OBTAIN)
    return load_unet(weights), autoencoder


def load_generator(
    name: str,
    *,
    weights: str | Path | None = None,
    taesd: str | Path | None = None,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    backend: str = "torch",
    channels_last: bool = False,
    cuda_graph: bool = False,
    compile_mode: str | None = None,
    fp8_linear: bool = False,
    compile_cache_dir: str | None = None,
    ahead_of_time: bool = False,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> Generator:
    """Build a generator by name (``tiny``, ``tiny-taesd``, ``sd-turbo``) from local files only.

    ``channels_last``, ``cuda_graph`` and ``compile_mode`` (a ``torch.compile`` mode) are CUDA
    speed-ups; measured effects are in docs/engines.md. ``max_batch`` bounds the frames of one
    UNet call (longer generation groups run in slices of it). ``backend`` is ``torch``, ``fast``,
    ``tensorrt`` or ``auto`` (TensorRT when installed, else the fast compiled path on CUDA;
    eager PyTorch on the CPU or when the torch switches are given; docs/realtime.md).
    ``ahead_of_time`` makes the fast backend load its compiled steps from packages cached under
    ``compile_cache_dir`` (built on first use) instead of compiling in every process.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown generator {name!r}; expected one of {', '.join(VARIANTS)}")
    variant = VARIANTS[name]
    if variant.float32_only:
        dtype = torch.float32
    channels_last = channels_last or variant.channels_last
    unet, autoencoder = _load_networks(name, weights, taesd)
    generator_id = compute_generator_id(
        variant.family,
        {
            "unet": architecture_config(variant.unet_config),
            "decoder": architecture_config(variant.decoder_config),
        },
        {"unet": unet, "decoder": autoencoder.decoder},
    )
    resolved = resolve_device(device)
    options = BackendOptions(
        kind=backend,
        device=resolved,
        dtype=dtype or default_dtype(resolved),
        channels_last=channels_last,
        cuda_graph=cuda_graph,
        compile_mode=compile_mode,
        fp8_linear=fp8_linear,
        compile_cache_dir=compile_cache_dir,
        cache_key=generator_id,
        ahead_of_time=ahead_of_time,
        max_batch=max_batch,
    )
    encoder = (
        autoencoder.encoder.float().eval().requires_grad_(False)
        if autoencoder.encoder is not None
        else None
    )
    return Generator(
        variant=variant,
        generator_id=generator_id,
        backend=make_backend(unet, autoencoder.decoder, options),
        encoder=encoder,
    )
