"""The backend interface: run a generator's UNet and decoder on one device."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from engines.backends.frame_sink import FrameSink
from engines.backends.host_copy import PinnedFrameSink
from engines.backends.options import BackendOptions
from engines.colour import RGB24, frame_shape, image_to_frames
from engines.schedule import mix_latent, x0_from_eps


class Backend(ABC):
    """UNet epsilon and decoder calls on one device; x0 always in float32."""

    options: BackendOptions
    # True where each new (batch, size) is compiled or captured on first use (about a minute for
    # SD-Turbo compiled): callers warm such a backend up on the shapes they expect.
    specialises_shapes: bool = False

    @property
    def device(self) -> torch.device:
        return torch.device(self.options.device)

    @property
    def max_batch(self) -> int:
        """The most frames one ``generate_group`` call is given (streams slice longer groups)."""
        return self.options.max_batch

    @abstractmethod
    def eps(self, latent_input: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """UNet noise prediction at t=999 as float32; differentiable w.r.t. context."""

    @abstractmethod
    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Decoder image [B,3,H,W] in about [-1,1] as float32; differentiable."""

    def forward(
        self, latent_input: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, image) with autograd: the path inversion optimises through."""
        x0 = x0_from_eps(latent_input, self.eps(latent_input, context))
        return x0, self.decode(x0)

    @torch.inference_mode()
    def generate(
        self, latent_input: torch.Tensor, context: torch.Tensor, frame_format: str = RGB24
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 float32 [B,4,h,w], uint8 frames of ``frame_format``) without autograd: the streaming path."""
        x0, image = self.forward(latent_input, context)
        return x0, image_to_frames(image, frame_format)

    def generate_group(
        self,
        prev: torch.Tensor,
        noise: torch.Tensor,
        weight: float,
        context: torch.Tensor,
        frame_format: str = RGB24,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One stream group: (UNet input [1,4,h,w], x0, frames) for input ``w * prev + (1 - w) * noise``."""
        latent_input = mix_latent(prev, noise, weight)
        x0, frames = self.generate(
            latent_input.expand(context.shape[0], -1, -1, -1), context, frame_format
        )
        return latent_input, x0, frames

    def frame_sink(self, total: int, frame_format: str, height: int, width: int) -> FrameSink:
        """Where a chunk's frames gather on the host (pinned, asynchronous copies on CUDA)."""
        shape = frame_shape(frame_format, height, width)
        if self.device.type == "cuda":
            return PinnedFrameSink(total, shape, self.device)
        return FrameSink(total, shape)


class WholeGroupStepMixin(Backend):
    """For backends whose one captured step is a whole group (mix, UNet, x0, decoder):
    ``generate`` on an already-mixed input is a group with weight 1 on it and a zero noise."""

    @torch.inference_mode()
    def generate(
        self, latent_input: torch.Tensor, context: torch.Tensor, frame_format: str = RGB24
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, x0, frames = self.generate_group(
            latent_input, torch.zeros_like(latent_input[:1]), 1.0, context, frame_format
        )
        return x0, frames
