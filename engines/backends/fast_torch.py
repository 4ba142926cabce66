"""The fast PyTorch CUDA path: one compiled, graph-captured step from noise mix to uint8 frames.

What one replay does, all on the device: ``w * prev + (1 - w) * noise`` (float32), the UNet at
t=999 (fp16/bf16, channels_last, SDPA attention, fused QKV projections, optionally float8
linears), x0 in float32, the decoder and the uint8 conversion into an NHWC frame buffer.
``torch.compile`` sees the whole step as one graph, so the mix, the x0 arithmetic and the
decoder's input cast/clamp fuse into neighbouring kernels; its cache lives in a persistent
folder (``compile_cache``). ``eps``/``decode``/``forward`` stay eager (autograd, inversion).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from engines.backends.base import BackendOptions, WholeGroupStepMixin, image_to_uint8
from engines.backends.compile_cache import configure_compile_cache
from engines.backends.fp8 import convert_linears_to_fp8
from engines.backends.torch_backend import GRAPH_WARMUP_RUNS, TorchBackend
from engines.schedule import x0_from_eps

DEFAULT_FAST_COMPILE_MODE = (
    "default"  # Inductor without its own CUDA graphs: we capture the step ourselves
)
FP8_MIN_CAPABILITY = (8, 9)  # float8 tensor cores: Ada (8.9) and Hopper (9.0)
# The SDPA kernel to try first; the others stay enabled behind it (FALLBACK_ORDER) for shapes
# it does not support.
ATTENTION_FIRST = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
FALLBACK_ORDER = (
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.MATH,
)


@contextlib.contextmanager
def attention_kernels(choice: str) -> Iterator[None]:
    """SDPA kernel priority while a step is traced (the choice is baked into the compiled graph)."""
    if choice == "auto":
        yield
        return
    first = ATTENTION_FIRST[choice]
    with sdpa_kernel([first, *(b for b in FALLBACK_ORDER if b != first)], set_priority=True):
        yield


def tune_inductor() -> None:
    """Inductor settings that help UNet-shaped graphs (diffusers' published recipe)."""
    import torch._inductor.config as inductor_config

    inductor_config.conv_1x1_as_mm = (
        True  # 1x1 convolutions as matmuls: Triton/cuBLAS beat cuDNN there
    )


@dataclass
class _CapturedGroupStep:
    graph: torch.cuda.CUDAGraph
    prev: torch.Tensor  # [1 or B, 4, h, w] float32
    noise: torch.Tensor  # [1, 4, h, w] float32
    mix: torch.Tensor  # [2] float32: (w, 1 - w)
    context: torch.Tensor  # [B, 77, 1024] float32
    latent_input: torch.Tensor
    x0: torch.Tensor
    frames: torch.Tensor


class FastTorchBackend(WholeGroupStepMixin, TorchBackend):
    """CUDA-only: compiled whole-step graph per (batch, size); eager paths as ``TorchBackend``."""

    specialises_shapes = True

    def __init__(self, unet: nn.Module, decoder: nn.Module, options: BackendOptions) -> None:
        if options.attention != "auto" and options.attention not in ATTENTION_FIRST:
            raise ValueError(
                f"attention {options.attention!r}: expected auto or one of {', '.join(ATTENTION_FIRST)}"
            )
        if not options.device.startswith("cuda"):
            raise ValueError("the fast backend needs a CUDA device; use kind='torch' on the CPU")
        if options.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"the fast backend runs float16 or bfloat16, not {options.dtype}")
        # The parent casts and places the networks; graphs and compiling are this class's job.
        super().__init__(
            unet, decoder, replace(options, channels_last=True, cuda_graph=False, compile_mode=None)
        )
        self.options = options
        # cuDNN times its convolution algorithms during the warm-up runs before capture; the
        # graph then replays the fastest ones (its heuristics alone leave speed on the table).
        torch.backends.cudnn.benchmark = True
        if hasattr(self.unet, "fuse_qkv_projections"):
            self.unet.fuse_qkv_projections()  # one matmul for q, k, v (k, v for cross-attention)
            self.unet.requires_grad_(False)  # the fused linears are new parameters
        self.fp8_linears = 0
        if options.fp8_linear:
            capability = torch.cuda.get_device_capability(self.device)
            if capability < FP8_MIN_CAPABILITY:
                raise ValueError(
                    f"float8 linears need compute capability >= 8.9, this GPU has {capability}"
                )
            self.fp8_linears = convert_linears_to_fp8(self.unet)
        self._step_fn = self._step
        if options.compile_mode != "none":
            self.compile_cache = configure_compile_cache(options.compile_cache_dir)
            tune_inductor()
            # dynamic=False: each (batch, size) specialises; no slower symbolic-shape kernels.
            self._step_fn = torch.compile(
                self._step, mode=options.compile_mode or DEFAULT_FAST_COMPILE_MODE, dynamic=False
            )
        self._group_graphs: dict[tuple[int, ...], _CapturedGroupStep] = {}

    def _step(
        self, prev: torch.Tensor, noise: torch.Tensor, mix: torch.Tensor, context: torch.Tensor
    ):
        latent_input = mix[0] * prev + mix[1] * noise
        batch_input = latent_input.expand(context.shape[0], -1, -1, -1)
        eps = self.eps(batch_input, context)
        x0 = x0_from_eps(batch_input, eps)
        frames = image_to_uint8(
            self.decode(x0)
        ).contiguous()  # NHWC buffer: one host copy per batch
        return latent_input[:1], x0, frames

    @torch.inference_mode()
    def generate_group(
        self, prev: torch.Tensor, noise: torch.Tensor, weight: float, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        count = context.shape[0]
        step = self._group_graphs.get((*prev.shape, *context.shape)) or self._larger_step(
            prev, context
        )
        if step is None:
            step = self._group_graphs[(*prev.shape, *context.shape)] = self._capture(
                prev, noise, context
            )
        step.prev.copy_(prev)
        step.noise.copy_(noise)
        step.mix.copy_(torch.tensor([weight, 1.0 - weight], dtype=torch.float32), non_blocking=True)
        step.context[:count].copy_(context)
        step.context[count:].copy_(context[-1:].expand(step.context.shape[0] - count, -1, -1))
        step.graph.replay()
        # Clones: the next replay overwrites the static outputs while callers still hold these.
        return step.latent_input.clone(), step.x0[:count].clone(), step.frames[:count].clone()

    def _larger_step(self, prev: torch.Tensor, context: torch.Tensor) -> _CapturedGroupStep | None:
        """A captured step for more frames of the same size, to run a short group padded.

        A stream's last group is often shorter than its keyframe interval; compiling a graph
        for that one shape would stall the stream for most of a minute, padding costs a few
        wasted frames once.
        """
        if prev.shape[0] != 1:
            return None
        larger = [
            step
            for step in self._group_graphs.values()
            if step.prev.shape == prev.shape
            and step.context.shape[1:] == context.shape[1:]
            and step.context.shape[0] > context.shape[0]
        ]
        return min(larger, key=lambda step: step.context.shape[0], default=None)

    def _capture(
        self, prev: torch.Tensor, noise: torch.Tensor, context: torch.Tensor
    ) -> _CapturedGroupStep:
        static = [t.to(self.device, torch.float32).clone() for t in (prev, noise)]
        mix = torch.tensor([1.0, 0.0], device=self.device)
        static_context = context.to(self.device, torch.float32).clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with attention_kernels(self.options.attention):
            with torch.cuda.stream(side):  # compile + autotune + cuDNN/cuBLAS choices happen here
                for _ in range(GRAPH_WARMUP_RUNS):
                    self._step_fn(*static, mix, static_context)
            torch.cuda.current_stream(self.device).wait_stream(side)
            if self._graph_pool is None:
                self._graph_pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._graph_pool):
                latent_input, x0, frames = self._step_fn(*static, mix, static_context)
        return _CapturedGroupStep(graph, *static, mix, static_context, latent_input, x0, frames)
