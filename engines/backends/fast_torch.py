"""The fast PyTorch CUDA path: one compiled, graph-captured step from noise mix to uint8 frames.

What one replay does, all on the device: ``w * prev + (1 - w) * noise`` (float32), the UNet at
t=999 (fp16/bf16, channels_last, SDPA attention, fused QKV projections, optionally float8
linears), x0 in float32, the decoder and the conversion into a uint8 frame buffer (packed RGB,
or planar YUV 4:2:0 for the encoder: ``engines.colour``). The compiler sees the whole step as
one graph, so the mix, the x0 arithmetic, the decoder's input cast/clamp and the colour
conversion fuse into neighbouring kernels. Two ways to compile it: ``torch.compile`` (its
Inductor cache lives in a persistent folder, ``compile_cache``, but Dynamo traces again in
every process: about 45 s for SD-Turbo), or ahead of time (``ahead_of_time``: AOTInductor
packages cached per generator, card and version, ``aot_cache``; a restart loads them in
seconds, and falls back to ``torch.compile`` with a log line when that fails).
``eps``/``decode``/``forward`` stay eager (autograd, inversion).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from engines import colour, schedule
from engines.backends import fp8
from engines.backends.aot_cache import (
    AOT_SUBFOLDER,
    AotKey,
    AotStepCache,
    device_description,
    source_fingerprint,
)
from engines.backends.base import WholeGroupStepMixin
from engines.backends.compile_cache import configure_compile_cache
from engines.backends.options import BackendOptions, FastTorchOptions, TorchOptions, own_options
from engines.backends.precompiled import PRECOMPILED_SUBFOLDER, PrecompiledStepCache
from engines.backends.torch_backend import GRAPH_WARMUP_RUNS, TorchBackend
from engines.colour import RGB24
from engines.psnr import frames_psnr_db
from engines.schedule import x0_from_eps

log = logging.getLogger(__name__)

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
# An ahead-of-time step must reproduce the eager step before it is used: frames at least this
# close (fp16 compiled vs eager differ by about 0.1 grey level on average; garbage is far below).
AOT_MIN_PSNR_DB = 40.0


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


class GroupStep(nn.Module):
    """One stream group, as one graph: mix -> UNet at ``timestep`` -> x0 (float32) -> decoder -> frame planes.

    The inputs are the captured step's static buffers; the timestep is an input (as a constant,
    AOTInductor's lowering fails on it). The networks are the backend's (shared parameters).
    With ``convert_in_graph`` the colour conversion is part of the graph; without it the graph
    ends at RGB and :meth:`finish` converts after it (still on the device, still captured): the
    way round a compiler that cannot build the conversion.
    """

    def __init__(
        self, backend: TorchBackend, frame_format: str, convert_in_graph: bool = True
    ) -> None:
        super().__init__()
        colour.check_frame_format(frame_format)
        self.backend = backend
        self.unet = backend.unet  # registered, so export and load_constants see the parameters
        self.decoder = backend.decoder
        self.frame_format = frame_format
        self.graph_format = frame_format if convert_in_graph else RGB24

    def forward(
        self,
        prev: torch.Tensor,
        noise: torch.Tensor,
        mix: torch.Tensor,
        context: torch.Tensor,
        timestep: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        latent_input = mix[0] * prev + mix[1] * noise
        batch_input = latent_input.expand(context.shape[0], -1, -1, -1)
        x0 = x0_from_eps(batch_input, self.backend.unet_eps(batch_input, context, timestep))
        levels = colour.image_levels(self.backend.decode(x0))
        return (latent_input[:1], x0, *colour.levels_to_planes(levels, self.graph_format))

    def finish(
        self, outputs: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The graph's outputs -> (UNet input, x0, frames of ``frame_format`` in one tensor)."""
        latent_input, x0, *planes = outputs
        if self.graph_format == self.frame_format:
            return latent_input, x0, colour.pack_planes(tuple(planes), self.frame_format)
        # the graph ended at RGB (convert_in_graph off), so the frames are yuv420p
        return latent_input, x0, colour.levels_to_yuv420p(planes[0].permute(0, 3, 1, 2).float())


@dataclass
class _CapturedGroupStep:
    graph: (
        torch.cuda.CUDAGraph | None
    )  # None: the step runs uncaptured (its runner could not be captured)
    runner: Callable[..., Any]
    timestep: torch.Tensor
    prev: torch.Tensor  # [1 or B, 4, h, w] float32
    noise: torch.Tensor  # [1, 4, h, w] float32
    mix: torch.Tensor  # [2] float32: (w, 1 - w)
    context: torch.Tensor  # [B, 77, 1024] float32
    latent_input: torch.Tensor
    x0: torch.Tensor
    frames: torch.Tensor
    compiled: str  # how its step was compiled: "ahead-of-time", "torch.compile" or "eager"

    def run(self) -> None:
        """One group on the static inputs into the static outputs."""
        if self.graph is not None:
            self.graph.replay()
            return
        inputs = (self.prev, self.noise, self.mix, self.context, self.timestep)
        self.latent_input, self.x0, self.frames = self.runner(*inputs)


def _finishing(step: GroupStep, graph: Callable[..., Any]) -> Callable[..., Any]:
    """``graph`` (the step compiled some way) followed by the step's ``finish``."""

    def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return step.finish(graph(*inputs))

    return run


class FastTorchBackend(WholeGroupStepMixin, TorchBackend):
    """CUDA-only: compiled whole-step graph per (frame format, batch, size); eager paths as ``TorchBackend``."""

    specialises_shapes = True

    def __init__(self, unet: nn.Module, decoder: nn.Module, options: BackendOptions) -> None:
        own = own_options(options, FastTorchOptions)
        if own.attention != "auto" and own.attention not in ATTENTION_FIRST:
            raise ValueError(
                f"attention {own.attention!r}: expected auto or one of {', '.join(ATTENTION_FIRST)}"
            )
        if not options.device.startswith("cuda"):
            raise ValueError("the fast backend needs a CUDA device; use kind='torch' on the CPU")
        if options.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"the fast backend runs float16 or bfloat16, not {options.dtype}")
        if own.ahead_of_time and options.cache_key is None:
            raise ValueError(
                "ahead_of_time needs options.cache_key (the generator id) to key its packages"
            )
        # The parent casts and places the networks; graphs and compiling are this class's job.
        super().__init__(unet, decoder, replace(options, backend=TorchOptions(channels_last=True)))
        self.options = options
        self.fast_options = own
        # cuDNN times its convolution algorithms during the warm-up runs before capture; the
        # graph then replays the fastest ones (its heuristics alone leave speed on the table).
        torch.backends.cudnn.benchmark = True
        if hasattr(self.unet, "fuse_qkv_projections"):
            self.unet.fuse_qkv_projections()  # one matmul for q, k, v (k, v for cross-attention)
            self.unet.requires_grad_(False)  # the fused linears are new parameters
        self.fp8_linears = 0
        if own.fp8_linear:
            capability = torch.cuda.get_device_capability(self.device)
            if capability < FP8_MIN_CAPABILITY:
                raise ValueError(
                    f"float8 linears need compute capability >= 8.9, this GPU has {capability}"
                )
            self.fp8_linears = fp8.convert_linears_to_fp8(self.unet)
        self._aot: AotStepCache | None = None
        self._precompiled: PrecompiledStepCache | None = None
        if own.compile_mode != "none" or own.ahead_of_time:
            self.compile_cache = configure_compile_cache(own.compile_cache_dir)
            tune_inductor()
            if own.ahead_of_time:
                self._aot = AotStepCache(self.compile_cache / AOT_SUBFOLDER)
            if own.precompiled and own.compile_mode != "none" and options.cache_key is not None:
                self._precompiled = PrecompiledStepCache(
                    self.compile_cache / PRECOMPILED_SUBFOLDER, self._compile_mode()
                )
        self._group_graphs: dict[tuple, _CapturedGroupStep] = {}

    @torch.inference_mode()
    def generate_group(
        self,
        prev: torch.Tensor,
        noise: torch.Tensor,
        weight: float,
        context: torch.Tensor,
        frame_format: str = RGB24,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        count = context.shape[0]
        key = (frame_format, *prev.shape, *context.shape)
        step = self._group_graphs.get(key) or self._larger_step(prev, context, frame_format)
        if step is None:
            step = self._group_graphs[key] = self._capture_group(prev, noise, context, frame_format)
        step.prev.copy_(prev)
        step.noise.copy_(noise)
        step.mix.copy_(torch.tensor([weight, 1.0 - weight], dtype=torch.float32), non_blocking=True)
        step.context[:count].copy_(context)
        step.context[count:].copy_(context[-1:].expand(step.context.shape[0] - count, -1, -1))
        step.run()
        # Clones: the next replay overwrites the static outputs while callers still hold these.
        return step.latent_input.clone(), step.x0[:count].clone(), step.frames[:count].clone()

    def compiled_how(self, frame_format: str = RGB24) -> list[str]:
        """How each captured step of ``frame_format`` was compiled (for benchmarks and logs)."""
        return [step.compiled for key, step in self._group_graphs.items() if key[0] == frame_format]

    def _larger_step(
        self, prev: torch.Tensor, context: torch.Tensor, frame_format: str
    ) -> _CapturedGroupStep | None:
        """A captured step for more frames of the same size, to run a short group padded.

        A stream's last group is often shorter than its keyframe interval; compiling a graph
        for that one shape would stall the stream for most of a minute, padding costs a few
        wasted frames once.
        """
        if prev.shape[0] != 1:
            return None
        larger = [
            step
            for key, step in self._group_graphs.items()
            if key[0] == frame_format
            and step.prev.shape == prev.shape
            and step.context.shape[1:] == context.shape[1:]
            and step.context.shape[0] > context.shape[0]
        ]
        return min(larger, key=lambda step: step.context.shape[0], default=None)

    def _ways(
        self, frame_format: str, inputs: tuple[torch.Tensor, ...]
    ) -> list[tuple[str, Callable[[], Any]]]:
        """How to build the step, best first: (label, factory of a runner ``inputs -> finished outputs``)."""
        where = {True: "", False: ", colour conversion after the graph"}
        steps = {
            in_graph: GroupStep(self, frame_format, convert_in_graph=in_graph)
            for in_graph in ([True] if frame_format == RGB24 else [True, False])
        }
        ways = []
        for label, cache in (("ahead-of-time", self._aot), ("precompiled", self._precompiled)):
            if cache is not None:
                ways += [
                    (
                        f"{label}{where[k]}",
                        functools.partial(self._cached_runner, cache, step, inputs),
                    )
                    for k, step in steps.items()
                ]
        if self.fast_options.compile_mode == "none":
            return ways + [
                (f"eager{where[k]}", functools.partial(_finishing, step, step))
                for k, step in steps.items()
            ]
        # dynamic=False: each (batch, size) specialises; no slower symbolic-shape kernels.
        mode = self._compile_mode()
        return ways + [
            (
                f"torch.compile{where[k]}",
                functools.partial(_finishing, step, torch.compile(step, mode=mode, dynamic=False)),
            )
            for k, step in steps.items()
        ]

    def _compile_mode(self) -> str:
        return self.fast_options.compile_mode or DEFAULT_FAST_COMPILE_MODE

    def _aot_key(self, step: GroupStep, inputs: tuple[torch.Tensor, ...]) -> AotKey:
        import diffusers

        modules = [sys.modules[__name__], colour, schedule, fp8]
        return AotKey(
            generator_id=str(self.options.cache_key),
            device=device_description(self.device),
            torch=torch.__version__,
            cuda=torch.version.cuda,
            diffusers=diffusers.__version__,
            code=source_fingerprint(modules),
            dtype=str(self.options.dtype).removeprefix("torch."),
            frame_format=step.frame_format,
            input_shapes=tuple(tuple(t.shape) for t in inputs),
            options=f"attention={self.fast_options.attention},"
            f"fp8_linear={self.fast_options.fp8_linear},"
            f"graph_format={step.graph_format},"
            f"compile_mode={self._compile_mode()}",
        )

    def _cached_runner(
        self,
        cache: AotStepCache | PrecompiledStepCache,
        step: GroupStep,
        inputs: tuple[torch.Tensor, ...],
    ) -> Callable[..., Any]:
        """The step from ``cache`` (built on a miss), checked against the eager step."""
        reference = step.finish(step(*inputs))[2]

        def agreement(runner: Callable[..., Any]) -> float:
            return frames_psnr_db(step.finish(runner(*inputs))[2], reference)

        key = self._aot_key(step, inputs)
        return _finishing(step, cache.checked(key, step, inputs, agreement, AOT_MIN_PSNR_DB))

    def _first_working_way(
        self, frame_format: str, inputs: tuple[torch.Tensor, ...]
    ) -> tuple[Callable[..., Any], str]:
        """Build the step the best way that works, warmed up (compiled, autotuned) on ``inputs``."""
        ways = self._ways(frame_format, inputs)
        for index, (label, make) in enumerate(ways):
            try:
                runner = make()
                for _ in range(GRAPH_WARMUP_RUNS):
                    runner(*inputs)
                return runner, label
            except Exception as error:
                if index == len(ways) - 1:
                    raise
                log.warning(
                    "the %s step failed (%s: %s); trying it %s",
                    label,
                    type(error).__name__,
                    str(error)[:300],
                    ways[index + 1][0],
                )
        raise AssertionError("unreachable: there is always an eager or compiled way")

    def _capture_group(
        self, prev: torch.Tensor, noise: torch.Tensor, context: torch.Tensor, frame_format: str
    ) -> _CapturedGroupStep:
        # plain tensors, not inference-mode ones: a precompiled step guards on their dispatch keys
        with torch.inference_mode(False):
            static_prev, static_noise = (
                t.to(self.device, torch.float32).clone() for t in (prev, noise)
            )
            mix = torch.tensor([1.0, 0.0], device=self.device)
            static_context = context.to(self.device, torch.float32).clone()
        inputs = (static_prev, static_noise, mix, static_context, self._timestep)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with attention_kernels(self.fast_options.attention):
            with torch.cuda.stream(side):  # compile + autotune + cuDNN/cuBLAS choices happen here
                runner, compiled = self._first_working_way(frame_format, inputs)
            torch.cuda.current_stream(self.device).wait_stream(side)
            torch.cuda.synchronize(
                self.device
            )  # nothing of the warm-up still running while capturing
            if self._graph_pool is None:
                self._graph_pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            captured: torch.cuda.CUDAGraph | None = graph
            try:
                # An AOTInductor runner is C++ the capture cannot vet call by call: relaxed mode.
                mode = "relaxed" if compiled.startswith("ahead-of-time") else "global"
                with torch.cuda.graph(graph, pool=self._graph_pool, capture_error_mode=mode):
                    latent_input, x0, frames = runner(*inputs)
            except Exception as error:
                if not compiled.startswith("ahead-of-time"):
                    raise
                # its C++ wrapper launches the kernels without Python: little is lost uncaptured
                log.warning(
                    "capturing the ahead-of-time step failed (%s: %s); running it uncaptured",
                    type(error).__name__,
                    str(error)[:300],
                )
                torch.cuda.synchronize(self.device)
                captured = None
                latent_input, x0, frames = runner(*inputs)
        log.info(
            "captured the %s group step for %d frames of %s (%s%s)",
            frame_format,
            context.shape[0],
            "x".join(map(str, prev.shape[2:])),
            compiled,
            "" if captured else ", uncaptured",
        )
        how = compiled if captured is not None else f"{compiled}, uncaptured"
        return _CapturedGroupStep(
            captured,
            runner,
            self._timestep,
            static_prev,
            static_noise,
            mix,
            static_context,
            latent_input,
            x0,
            frames,
            how,
        )
