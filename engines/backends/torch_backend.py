"""PyTorch backend: CPU float32, CUDA fp16/bf16 with channels_last and CUDA-graph replay."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engines.backends.base import Backend
from engines.backends.options import BackendOptions, TorchOptions, own_options
from engines.colour import RGB24
from engines.schedule import ONE_STEP_TIMESTEP

GRAPH_WARMUP_RUNS = 3  # eager runs on a side stream before capture (cuDNN/cuBLAS pick kernels)


@dataclass
class _CapturedStep:
    graph: torch.cuda.CUDAGraph
    latent_input: torch.Tensor
    context: torch.Tensor
    x0: torch.Tensor
    frames: torch.Tensor


class TorchBackend(Backend):
    """Eager PyTorch; on CUDA ``generate`` may replay one captured graph per input shape."""

    def __init__(self, unet: nn.Module, decoder: nn.Module, options: BackendOptions) -> None:
        own = own_options(options, TorchOptions)
        if own.cuda_graph and not options.device.startswith("cuda"):
            raise ValueError("cuda_graph needs a CUDA device")
        if options.dtype != torch.float32 and not options.device.startswith("cuda"):
            raise ValueError(f"{options.dtype} runs only on CUDA; the CPU backend is float32")
        self.options = options
        self._cuda_graph = own.cuda_graph
        memory_format = torch.channels_last if own.channels_last else torch.contiguous_format
        # nn.Module.to, not diffusers' override, which warns on every dtype cast.
        # (torch's overloads of Module.to omit memory_format, which it takes at run time)
        self.unet = nn.Module.to(  # type: ignore[call-overload]
            unet, device=options.device, dtype=options.dtype, memory_format=memory_format
        )
        self.decoder = nn.Module.to(  # type: ignore[call-overload]
            decoder, device=options.device, dtype=options.dtype, memory_format=memory_format
        )
        for module in (self.unet, self.decoder):
            module.eval().requires_grad_(False)
        if own.compile_mode is not None:
            # Compiled wrappers share the parameters; identity was hashed before this point.
            self.unet = torch.compile(self.unet, mode=own.compile_mode)
            self.decoder = torch.compile(self.decoder, mode=own.compile_mode)
        self._memory_format = memory_format
        self._timestep = torch.tensor(ONE_STEP_TIMESTEP, device=options.device, dtype=torch.long)
        self._graphs: dict[tuple, _CapturedStep] = {}
        self._graph_pool: torch.cuda._POOL_HANDLE | None = None  # shared by the captured graphs

    def _prepare(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(device=self.device, dtype=self.options.dtype)
        return tensor.contiguous(memory_format=self._memory_format) if tensor.dim() == 4 else tensor

    def eps(self, latent_input: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet_eps(latent_input, context, self._timestep)

    def unet_eps(
        self, latent_input: torch.Tensor, context: torch.Tensor, timestep: torch.Tensor
    ) -> torch.Tensor:
        """The UNet's eps at ``timestep`` (a device tensor: an input of exported graphs, never a constant)."""
        sample = self._prepare(latent_input)
        out = self.unet(
            sample, timestep, encoder_hidden_states=self._prepare(context), return_dict=False
        )[0]
        return out.float()

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return self.decoder(self._prepare(x0)).float()

    @torch.inference_mode()
    def generate(
        self, latent_input: torch.Tensor, context: torch.Tensor, frame_format: str = RGB24
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._cuda_graph:
            return super().generate(latent_input, context, frame_format)
        key = (frame_format, *latent_input.shape, *context.shape)
        step = self._graphs.get(key) or self._capture(latent_input, context, frame_format)
        self._graphs[key] = step
        step.latent_input.copy_(latent_input)
        step.context.copy_(context)
        step.graph.replay()
        return step.x0.clone(), step.frames.clone()

    def _capture(
        self, latent_input: torch.Tensor, context: torch.Tensor, frame_format: str
    ) -> _CapturedStep:
        static_latent = latent_input.to(self.device, torch.float32).clone()
        static_context = context.to(self.device, torch.float32).clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_RUNS):
                Backend.generate(self, static_latent, static_context, frame_format)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._graph_pool):
            x0, frames = Backend.generate(self, static_latent, static_context, frame_format)
        return _CapturedStep(graph, static_latent, static_context, x0, frames)
