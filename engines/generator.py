"""``Generator``: a UNet and decoder behind one backend, with its identity (built by ``engines.loaders``)."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from engines.backends import Backend
from engines.colour import RGB24
from engines.errors import WeightsNotFoundError
from engines.memory import release_memory
from engines.stream import GeneratorStream
from engines.taesd import TAESD_HOW_TO_OBTAIN
from engines.variants import Variant
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
