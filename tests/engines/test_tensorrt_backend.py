"""TensorRT backend: imports and refuses cleanly without TensorRT; its pure parts (cache key, workspace)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engines.backends import (
    BackendOptions,
    TensorRTOptions,
    make_backend,
    resolve_backend_kind,
)
from engines.backends.tensorrt_backend import (
    MIN_WORKSPACE_BYTES,
    engine_cache_path,
    tensorrt_available,
    workspace_bytes,
)

KEY = dict(
    gpu_name="NVIDIA H100 80GB HBM3",
    tensorrt_version="10.9.0",
    generator_id="sd-turbo:0123abcd",
    part="unet_step",
    height=512,
    width=512,
)


def test_cache_path_names_gpu_version_and_generator(tmp_path):
    path = engine_cache_path(tmp_path, **KEY)
    assert path.parent == tmp_path / "sd-turbo_0123abcd"
    assert path.name.startswith("unet_step-512x512-nvidia-h100-80gb-hbm3-trt10.9.0-fp16-b32-")
    assert path.suffix == ".plan"


@pytest.mark.parametrize(
    "change",
    [
        {"gpu_name": "NVIDIA H200"},
        {"tensorrt_version": "10.10.0"},
        {"generator_id": "sd-turbo:ffff"},
        {"part": "decoder"},
        {"height": 256},
        {"precision": "fp8"},
        {"max_batch": 16},
    ],
)
def test_cache_path_changes_with_every_key_field(tmp_path, change):
    assert engine_cache_path(tmp_path, **{**KEY, **change}) != engine_cache_path(tmp_path, **KEY)


def test_workspace_is_half_the_free_memory_with_a_floor():
    assert workspace_bytes(40 << 30) == 20 << 30
    assert workspace_bytes(1 << 20) == MIN_WORKSPACE_BYTES


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_without_tensorrt_the_backend_refuses_and_auto_falls_back():
    assert not tensorrt_available()
    with pytest.raises(ValueError, match="tensorrt"):
        make_backend(
            torch.nn.Identity(),
            torch.nn.Identity(),
            BackendOptions(backend=TensorRTOptions(), cache_key="x"),
        )
    assert (
        resolve_backend_kind(BackendOptions(device="cuda", dtype=torch.float16, backend=None))
        == "fast"
    )
    assert resolve_backend_kind(BackendOptions(device="cpu", backend=None)) == "torch"


@pytest.mark.gpu
@pytest.mark.skipif(
    not tensorrt_available(), reason="needs TensorRT, Polygraphy, cuda-python and CUDA"
)
def test_tensorrt_frames_match_the_fast_torch_path(tmp_path):
    from engines import load_generator
    from engines.backends.tensorrt_backend import TensorRTBackend

    trt = load_generator("tiny", device="cuda", backend="tensorrt", compile_cache_dir=str(tmp_path))
    fast = load_generator(
        "tiny", device="cuda", backend="fast", compile_cache_dir=str(tmp_path / "inductor")
    )
    assert isinstance(trt.backend, TensorRTBackend)
    prev, noise, context = (
        torch.randn(1, 4, 8, 8),
        torch.randn(1, 4, 8, 8),
        torch.randn(4, 77, 1024),
    )
    _, _, trt_frames = trt.backend.generate_group(prev.cuda(), noise.cuda(), 0.05, context.cuda())
    _, _, fast_frames = fast.backend.generate_group(prev.cuda(), noise.cuda(), 0.05, context.cuda())
    assert (trt_frames.int() - fast_frames.int()).abs().float().mean() < 3
    assert any(Path(tmp_path).rglob("*.plan"))  # the engine cache was written
