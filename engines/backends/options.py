"""How a generator runs: the settings every backend shares, and each backend's own options.

``BackendOptions`` holds the device, precision and batch bound that every backend reads, and
one backend's own frozen options: ``TorchOptions`` (eager PyTorch, on the CPU or CUDA),
``FastTorchOptions`` (the compiled whole-step CUDA graph) or ``TensorRTOptions``. The type of
that object names the backend ``make_backend`` builds; ``None`` is ``auto``. A switch that
belongs to one backend can only be given to that one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import torch

from engines.variants import DEFAULT_MAX_BATCH


@dataclass(frozen=True)
class TorchOptions:
    """Eager PyTorch (``TorchBackend``): float32 on the CPU, any precision on CUDA."""

    kind: ClassVar[str] = "torch"
    channels_last: bool = False  # both networks in channels-last memory format
    cuda_graph: bool = False  # CUDA only: ``generate`` replays one captured graph per input shape
    compile_mode: str | None = None  # torch.compile mode of both networks (None: not compiled)


@dataclass(frozen=True)
class FastTorchOptions:
    """The compiled whole-step CUDA graph (``FastTorchBackend``): CUDA, float16 or bfloat16."""

    kind: ClassVar[str] = "fast"
    compile_mode: str | None = None  # torch.compile mode of the whole step; "none": eager graph
    fp8_linear: bool = False  # on Hopper: the UNet's attention-block linears in float8
    compile_cache_dir: str | None = None  # persistent Inductor cache (None: the default)
    attention: str = (
        "auto"  # SDPA kernel first tried: "auto" (PyTorch's order), "cudnn", "flash", "efficient"
    )
    ahead_of_time: bool = False  # AOTInductor step packages cached on disk: a restart loads them
    precompiled: bool = (
        False  # torch.compile's saved ahead-of-time steps (not yet proven: docs/realtime.md)
    )


@dataclass(frozen=True)
class TensorRTOptions:
    """UNet step and decoder as TensorRT engines (``TensorRTBackend``): CUDA, float16."""

    kind: ClassVar[str] = "tensorrt"
    cache_dir: str | None = None  # where built engine plans are kept (None: the default)


BackendSettings = TorchOptions | FastTorchOptions | TensorRTOptions
SETTINGS_OF_KIND: dict[str, type[BackendSettings]] = {
    settings.kind: settings for settings in (TorchOptions, FastTorchOptions, TensorRTOptions)
}


@dataclass(frozen=True)
class BackendOptions:
    """Where and in which precision to run, and one backend's own options (``None``: auto)."""

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    backend: BackendSettings | None = field(default_factory=TorchOptions)
    max_batch: int = DEFAULT_MAX_BATCH  # frames per UNet call; longer groups run in slices
    cache_key: str | None = (
        None  # the generator id: keys on-disk caches (fast ahead-of-time, tensorrt)
    )

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")

    @property
    def kind(self) -> str:
        """``torch``, ``fast``, ``tensorrt``, or ``auto`` while no backend is named."""
        return "auto" if self.backend is None else self.backend.kind


Settings = TypeVar("Settings", TorchOptions, FastTorchOptions, TensorRTOptions)


def own_options(options: BackendOptions, expected: type[Settings]) -> Settings:
    """The backend options of type ``expected`` in ``options`` (ValueError for another backend's)."""
    if not isinstance(options.backend, expected):
        given = type(options.backend).__name__
        raise ValueError(f"{expected.__name__} expected for this backend, got {given}")
    return options.backend
