"""The backend interface: run a generator's UNet and decoder on one device."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from engines.schedule import mix_latent, x0_from_eps


@dataclass(frozen=True)
class BackendOptions:
    """How to run: which implementation, where, in which precision, with which speed-ups."""

    kind: str = "torch"  # "torch", "fast" (compiled whole-step CUDA graph), "tensorrt", or "auto"
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    cuda_graph: bool = False
    compile_mode: str | None = (
        None  # torch.compile mode (torch: both networks; fast: the whole step)
    )
    fp8_linear: bool = False  # fast backend on Hopper: the UNet's attention-block linears in float8
    compile_cache_dir: str | None = (
        None  # fast backend: persistent Inductor cache (None: the default)
    )
    attention: str = "auto"  # fast backend: SDPA kernel first tried ("auto": PyTorch's order; "cudnn", "flash", "efficient")
    cache_key: str | None = None  # the generator id: keys on-disk engine caches (tensorrt)


def image_to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] images in about [-1,1] -> [B,H,W,3] uint8 (on the same device)."""
    scaled = ((image.float() + 1.0) * 127.5).round_().clamp_(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1)


class Backend(ABC):
    """UNet epsilon and decoder calls on one device; x0 always in float32."""

    options: BackendOptions
    # True where each new (batch, size) is compiled or captured on first use (about a minute for
    # SD-Turbo compiled): callers warm such a backend up on the shapes they expect.
    specialises_shapes: bool = False

    @property
    def device(self) -> torch.device:
        return torch.device(self.options.device)

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
        self, latent_input: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 float32 [B,4,h,w], frames uint8 [B,H,W,3]) without autograd: the streaming path."""
        x0, image = self.forward(latent_input, context)
        return x0, image_to_uint8(image)

    def generate_group(
        self, prev: torch.Tensor, noise: torch.Tensor, weight: float, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One stream group: (UNet input [1,4,h,w], x0, frames) for input ``w * prev + (1 - w) * noise``."""
        latent_input = mix_latent(prev, noise, weight)
        x0, frames = self.generate(latent_input.expand(context.shape[0], -1, -1, -1), context)
        return latent_input, x0, frames

    def frame_sink(self, total: int, height: int, width: int) -> FrameSink:
        """Where a chunk's frames gather on the host (pinned, asynchronous copies on CUDA)."""
        if self.device.type == "cuda":
            from engines.backends.host_copy import PinnedFrameSink

            return PinnedFrameSink(total, height, width, self.device)
        return FrameSink(total, height, width)


class WholeGroupStepMixin:
    """For backends whose one captured step is a whole group (mix, UNet, x0, decoder):
    ``generate`` on an already-mixed input is a group with weight 1 on it and a zero noise."""

    @torch.inference_mode()
    def generate(
        self, latent_input: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, x0, frames = self.generate_group(  # type: ignore[attr-defined]
            latent_input, torch.zeros_like(latent_input[:1]), 1.0, context
        )
        return x0, frames


class FrameSink:
    """Collects uint8 frame batches [B,H,W,3] into one host array [T,H,W,3] (the CPU form).

    ``ready`` hands the batches over as their copies land, so a consumer (the encoder) can
    start on the first group of a chunk while later groups are still being generated.
    """

    def __init__(self, total: int, height: int, width: int) -> None:
        self._frames = self._allocate((total, height, width, 3))
        self._offset = 0
        self._handed = 0  # batches given out by `ready`
        self._batches: list[tuple[int, int]] = []  # (start, count) of every batch added

    def _allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.empty(shape, dtype=np.uint8)

    def add(self, frames: torch.Tensor) -> None:
        """Append a batch (any device; this form copies synchronously)."""
        count = frames.shape[0]
        self._frames[self._offset : self._offset + count] = frames.cpu().numpy()
        self._record(count)

    def _record(self, count: int) -> None:
        self._batches.append((self._offset, count))
        self._offset += count

    def _landed(self, index: int, wait: bool) -> bool:
        """Whether batch ``index`` is on the host (waiting for it if ``wait``)."""
        return True

    def ready(self, wait: bool = False) -> Iterator[np.ndarray]:
        """The batches not handed out yet whose copies have landed, in order (all of them if ``wait``)."""
        while self._handed < len(self._batches) and self._landed(self._handed, wait):
            start, count = self._batches[self._handed]
            self._handed += 1
            yield self._frames[start : start + count]

    def result(self) -> np.ndarray:
        """All frames added, once every copy has landed."""
        if self._offset != len(self._frames):
            raise RuntimeError(f"frame sink got {self._offset} of {len(self._frames)} frames")
        return self._frames
