"""The backend interface: run a generator's UNet and decoder on one device."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from engines.schedule import x0_from_eps


@dataclass(frozen=True)
class BackendOptions:
    """How to run: which implementation, where, in which precision, with which speed-ups."""

    kind: str = "torch"  # "torch" now; "tensorrt" is the planned seam
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    cuda_graph: bool = False
    compile_mode: str | None = None  # torch.compile mode for both networks (None: eager)


def image_to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] images in about [-1,1] -> [B,H,W,3] uint8 (on the same device)."""
    scaled = ((image.float() + 1.0) * 127.5).round_().clamp_(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1)


class Backend(ABC):
    """UNet epsilon and decoder calls on one device; x0 always in float32."""

    options: BackendOptions

    @property
    def device(self) -> torch.device:
        return torch.device(self.options.device)

    @abstractmethod
    def eps(self, latent_input: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """UNet noise prediction at t=999 as float32; differentiable w.r.t. context."""

    @abstractmethod
    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Decoder image [B,3,H,W] in about [-1,1] as float32; differentiable."""

    def forward(self, latent_input: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, image) with autograd: the path inversion optimises through."""
        x0 = x0_from_eps(latent_input, self.eps(latent_input, context))
        return x0, self.decode(x0)

    @torch.inference_mode()
    def generate(self, latent_input: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 float32 [B,4,h,w], frames uint8 [B,H,W,3]) without autograd: the streaming path."""
        x0, image = self.forward(latent_input, context)
        return x0, image_to_uint8(image)
