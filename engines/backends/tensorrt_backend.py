"""TensorRT backend (optional extra ``tensorrt``): engines built from the ONNX export, run in a CUDA graph.

NOT RUN HERE: TensorRT cannot be installed on any machine this project has, so this module
has never built or executed an engine. It follows the documented APIs (TensorRT 10 Python API:
``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``; Polygraphy's
``network_from_onnx_path`` / ``CreateConfig`` / ``Profile`` / ``engine_from_network``;
cuda-python's runtime stream capture) and imports without any of them; ``tensorrt_available()``
says whether it can run. The pure parts (cache key, workspace size) are tested here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.backends.base import WholeGroupStepMixin
from engines.backends.options import BackendOptions, TensorRTOptions, own_options
from engines.backends.torch_backend import TorchBackend
from engines.colour import RGB24, levels_to_yuv420p
from engines.devices import card_name
from prompts.stream_model import CONTEXT_SHAPE

ENGINE_CACHE_DIR = Path("~/.cache/promptus/tensorrt")  # default on-disk engine cache
MAX_BATCH = 32  # top of the batch optimisation profile
OPT_BATCH = 10  # the profile's optimum: one keyframe interval of frames
WORKSPACE_FRACTION = 0.5  # of the free GPU memory at build time, for TensorRT's tactic workspace
MIN_WORKSPACE_BYTES = 1 << 30  # never ask for less than 1 GiB
REQUIRED_MODULES = ("tensorrt", "polygraphy", "cuda")  # cuda = cuda-python
# (min, opt, max) shape of one engine input: its optimisation profile
ShapeRange = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def tensorrt_available() -> bool:
    """True when TensorRT, Polygraphy and cuda-python import and a CUDA device exists."""
    try:
        found = all(importlib.util.find_spec(name) is not None for name in REQUIRED_MODULES)
    except (ImportError, ValueError):
        return False
    return found and torch.cuda.is_available()


def workspace_bytes(free_bytes: int) -> int:
    """Workspace for the builder: half of what is free now, at least 1 GiB."""
    return max(MIN_WORKSPACE_BYTES, int(free_bytes * WORKSPACE_FRACTION))


def engine_cache_path(
    cache_dir: Path,
    *,
    gpu_name: str,
    tensorrt_version: str,
    generator_id: str,
    part: str,
    height: int,
    width: int,
    precision: str = "fp16",
    max_batch: int = MAX_BATCH,
) -> Path:
    """``<cache>/<generator id>/<part>-<HxW>-<gpu>-trt<version>-<precision>-b<max>-<hash>.plan``.

    An engine is only valid for the GPU model and TensorRT version that built it, and for the
    weights (the generator id), so all of them name the file; the hash guards odd characters.
    """
    gpu = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    fields = f"{generator_id}|{part}|{height}x{width}|{gpu_name}|{tensorrt_version}|{precision}|{max_batch}"
    digest = hashlib.sha256(fields.encode()).hexdigest()[:12]
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", generator_id)
    name = f"{part}-{height}x{width}-{gpu}-trt{tensorrt_version}-{precision}-b{max_batch}-{digest}.plan"
    return Path(cache_dir).expanduser() / folder / name


def _cudart() -> Any:  # cuda-python ships no types
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result: tuple[Any, ...]) -> Any:
    """cuda-python calls return (error, *values): raise on error, return the values."""
    error, *values = result
    if int(error) != 0:
        raise RuntimeError(f"CUDA runtime error {error}")
    return values[0] if len(values) == 1 else values


def build_engine(onnx_path: Path, plan_path: Path, *, input_shapes: dict[str, ShapeRange]) -> None:
    """Build an fp16 engine with one optimisation profile (min, opt, max per input) and save it."""
    import tensorrt as trt
    from polygraphy.backend.trt import (
        CreateConfig,
        Profile,
        engine_from_network,
        network_from_onnx_path,
        save_engine,
    )

    profile = Profile()
    for name, (smallest, optimum, largest) in input_shapes.items():
        profile.add(name, min=smallest, opt=optimum, max=largest)
    free, _ = torch.cuda.mem_get_info()
    config = CreateConfig(
        fp16=True,
        profiles=[profile],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace_bytes(free)},
    )
    engine = engine_from_network(network_from_onnx_path(str(onnx_path)), config=config)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    save_engine(engine, str(plan_path))


class _Engine:
    """One deserialised engine with its execution context; tensors bound by name."""

    def __init__(self, plan_path: Path) -> None:
        import tensorrt as trt

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"TensorRT could not load {plan_path} (built by another version or GPU?)"
            )
        self.context = self.engine.create_execution_context()
        self._input_mode = trt.TensorIOMode.INPUT

    def bind(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, tensor in tensors.items():
            if self.engine.get_tensor_mode(name) == self._input_mode:
                self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())

    def enqueue(self, stream_handle: int) -> None:
        if not self.context.execute_async_v3(stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")


@dataclass
class _GraphStep:
    """Static buffers of one (batch, size) and the captured CUDA graph over them."""

    prev: torch.Tensor
    noise: torch.Tensor
    mix: torch.Tensor
    context: torch.Tensor
    scratch: torch.Tensor  # prev-shaped mix temporary
    latent_input: torch.Tensor  # [B,4,h,w]
    x0: torch.Tensor
    image: torch.Tensor  # [B,3,H,W] float32
    frames: torch.Tensor  # [B,H,W,3] uint8
    graph_exec: object = None


class TensorRTBackend(WholeGroupStepMixin, TorchBackend):
    """UNet step and decoder as TensorRT engines; eager PyTorch (fp16) stays for autograd paths."""

    specialises_shapes = True

    def __init__(self, unet: nn.Module, decoder: nn.Module, options: BackendOptions) -> None:
        own = own_options(options, TensorRTOptions)
        if not tensorrt_available():
            raise ValueError(
                "backend 'tensorrt' is not available yet on this machine: install the 'tensorrt' extra "
                "(tensorrt, polygraphy, cuda-python) on a CUDA machine"
            )
        if options.cache_key is None:
            raise ValueError(
                "the tensorrt backend needs options.cache_key (the generator id) for its engine cache"
            )
        super().__init__(unet, decoder, BackendOptions(device=options.device, dtype=torch.float16))
        self.options = options
        self._generator_id = options.cache_key
        self._cache_dir = Path(own.cache_dir or ENGINE_CACHE_DIR).expanduser()
        self._engines: dict[tuple[int, int], tuple[_Engine, _Engine]] = {}
        self._steps: dict[tuple[int, ...], _GraphStep] = {}
        self._stream = torch.cuda.Stream(self.device)

    @property
    def max_batch(self) -> int:
        """Never above the engines' optimisation profile."""
        return min(self.options.max_batch, MAX_BATCH)

    def _engines_for(self, height: int, width: int) -> tuple[_Engine, _Engine]:
        if (height, width) in self._engines:
            return self._engines[(height, width)]
        import tensorrt as trt

        from engines.onnx_export import export_onnx

        plans = {
            part: engine_cache_path(
                self._cache_dir,
                gpu_name=card_name(self.device),
                tensorrt_version=trt.__version__,
                generator_id=self._generator_id,
                part=part,
                height=height,
                width=width,
            )
            for part in ("unet_step", "decoder")
        }
        if not all(path.is_file() for path in plans.values()):
            onnx_dir = plans["unet_step"].parent / f"onnx-{height}x{width}"
            exported = export_onnx(self.unet, self.decoder, onnx_dir, height=height, width=width)
            h, w = height // 8, width // 8
            shapes: dict[str, dict[str, ShapeRange]] = {
                "unet_step": {
                    "latent_input": ((1, 4, h, w), (OPT_BATCH, 4, h, w), (MAX_BATCH, 4, h, w)),
                    "context": (
                        (1, *CONTEXT_SHAPE),
                        (OPT_BATCH, *CONTEXT_SHAPE),
                        (MAX_BATCH, *CONTEXT_SHAPE),
                    ),
                },
                "decoder": {"x0": ((1, 4, h, w), (OPT_BATCH, 4, h, w), (MAX_BATCH, 4, h, w))},
            }
            build_engine(exported.unet_step, plans["unet_step"], input_shapes=shapes["unet_step"])
            build_engine(exported.decoder, plans["decoder"], input_shapes=shapes["decoder"])
        self._engines[(height, width)] = (_Engine(plans["unet_step"]), _Engine(plans["decoder"]))
        return self._engines[(height, width)]

    @torch.inference_mode()
    def generate_group(
        self,
        prev: torch.Tensor,
        noise: torch.Tensor,
        weight: float,
        context: torch.Tensor,
        frame_format: str = RGB24,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = context.shape[0]
        if batch > MAX_BATCH:
            raise ValueError(f"batch {batch} exceeds the TensorRT profile's maximum {MAX_BATCH}")
        key = (*prev.shape, *context.shape)
        step = self._steps.get(key) or self._capture_group(prev, noise, context)
        self._steps[key] = step
        cudart = _cudart()
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            step.prev.copy_(prev)
            step.noise.copy_(noise)
            step.mix.copy_(torch.tensor([weight, 1.0 - weight]), non_blocking=True)
            step.context.copy_(context)
            _check(cudart.cudaGraphLaunch(step.graph_exec, self._stream.cuda_stream))
            # the graph leaves RGB levels in step.image; planar YUV is converted from them, outside it
            frames = step.frames.clone() if frame_format == RGB24 else levels_to_yuv420p(step.image)
            outputs = step.latent_input[:1].clone(), step.x0.clone(), frames
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        return outputs

    def _enqueue_step(
        self, step: _GraphStep, unet_engine: _Engine, decoder_engine: _Engine
    ) -> None:
        """Everything one batch does, on ``self._stream``, allocation-free (so it can be captured)."""
        torch.mul(step.noise, step.mix[1], out=step.scratch)
        step.scratch.addcmul_(step.prev, step.mix[0])  # + w * prev
        step.latent_input.copy_(step.scratch.expand_as(step.latent_input))
        unet_engine.enqueue(self._stream.cuda_stream)
        decoder_engine.enqueue(self._stream.cuda_stream)
        step.image.add_(1.0).mul_(127.5).round_().clamp_(0, 255)
        step.frames.copy_(
            step.image.permute(0, 2, 3, 1)
        )  # exact: values are whole numbers in 0..255

    def _capture_group(
        self, prev: torch.Tensor, noise: torch.Tensor, context: torch.Tensor
    ) -> _GraphStep:
        batch, (rows, channels, h, w) = context.shape[0], prev.shape
        height, width = h * 8, w * 8
        unet_engine, decoder_engine = self._engines_for(height, width)
        device = self.device
        step = _GraphStep(
            prev=prev.to(device, torch.float32).clone(),
            noise=noise.to(device, torch.float32).clone(),
            mix=torch.tensor([1.0, 0.0], device=device),
            context=context.to(device, torch.float32).clone(),
            scratch=torch.empty(rows, channels, h, w, device=device),
            latent_input=torch.empty(batch, channels, h, w, device=device),
            x0=torch.empty(batch, channels, h, w, device=device),
            image=torch.empty(batch, 3, height, width, device=device),
            frames=torch.empty(batch, height, width, 3, device=device, dtype=torch.uint8),
        )
        unet_engine.bind(
            {"latent_input": step.latent_input, "context": step.context, "x0": step.x0}
        )
        decoder_engine.bind({"x0": step.x0, "image": step.image})
        cudart = _cudart()
        handle = self._stream.cuda_stream
        with torch.cuda.stream(self._stream):
            self._enqueue_step(
                step, unet_engine, decoder_engine
            )  # a run before capture (lazy init)
            self._stream.synchronize()
            _check(
                cudart.cudaStreamBeginCapture(
                    handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
                )
            )
            self._enqueue_step(step, unet_engine, decoder_engine)
            graph = _check(cudart.cudaStreamEndCapture(handle))
        step.graph_exec = _check(cudart.cudaGraphInstantiate(graph, 0))
        return step
