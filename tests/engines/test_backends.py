"""Backends: the factory, CPU precision rules, and (where CUDA exists) CUDA agreeing with CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines import load_generator
from engines.backends import (
    BackendOptions,
    TensorRTOptions,
    TorchOptions,
    backend_options,
    make_backend,
)
from engines.schedule import (
    X0_EPS_SCALE,
    X0_INPUT_SCALE,
    alphas_cumprod,
    mix_latent,
    unmix_latent,
    x0_from_eps,
)
from prompts.testing import level_chunks
from tests.engines.conftest import TEST_SIZE, init_latent

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_x0_constants_come_from_the_schedule():
    assert X0_INPUT_SCALE == pytest.approx(14.6488, abs=1e-4)
    assert X0_EPS_SCALE == pytest.approx(14.6146, abs=1e-4)
    assert alphas_cumprod()[999] == pytest.approx(0.0046600985, rel=1e-7)
    latent, eps = (
        torch.ones(1, 4, 2, 2, dtype=torch.float16),
        torch.ones(1, 4, 2, 2, dtype=torch.float16),
    )
    x0 = x0_from_eps(latent, eps)
    assert x0.dtype == torch.float32 and torch.allclose(
        x0, torch.full_like(x0, X0_INPUT_SCALE - X0_EPS_SCALE)
    )


def test_unmix_latent_inverts_mix_latent():
    prev, noise = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    mixed = mix_latent(prev.half(), noise, 0.05)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(
        unmix_latent(mixed, noise, 0.05), prev.half().float(), atol=1e-5, rtol=0
    )


def test_factory_names_what_exists():
    unet, decoder = torch.nn.Identity(), torch.nn.Identity()
    with pytest.raises(ValueError, match="not available yet"):
        make_backend(unet, decoder, BackendOptions(backend=TensorRTOptions()))
    with pytest.raises(ValueError, match="unknown backend"):
        backend_options("onnx", device="cpu", dtype=torch.float32)
    with pytest.raises(ValueError, match="CPU backend is float32"):
        make_backend(unet, decoder, BackendOptions(dtype=torch.float16))
    with pytest.raises(ValueError, match="cuda_graph needs a CUDA device"):
        make_backend(unet, decoder, BackendOptions(backend=TorchOptions(cuda_graph=True)))


def test_unknown_generator_name():
    with pytest.raises(ValueError, match="tiny, tiny-taesd, sd-turbo"):
        load_generator("sd-xl")


def test_forward_is_differentiable_wrt_context(tiny_generator):
    context = torch.zeros(2, 77, 1024, requires_grad=True)
    x0, image = tiny_generator.forward(torch.randn(2, 4, 8, 8), context)
    assert x0.shape == (2, 4, 8, 8) and image.shape == (2, 3, 64, 64) and x0.dtype == torch.float32
    image.square().mean().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0


def _decode_all(generator, rule="chunk-reset"):
    chunks = level_chunks(generator.generator_id, frames=16, interval=4, chunk_frames=8)
    stream = generator.open_stream(
        width=TEST_SIZE, height=TEST_SIZE, init_latent=init_latent(), prev_latent_rule=rule
    )
    return np.concatenate([stream.decode_chunk(chunk) for chunk in chunks])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("rule", ["chunk-reset", "chained"])
def test_cuda_fp32_agrees_with_cpu(tiny_generator, rule):
    cuda = load_generator("tiny", device="cuda", dtype=torch.float32)
    assert cuda.generator_id == tiny_generator.generator_id
    difference = np.abs(
        _decode_all(cuda, rule).astype(int) - _decode_all(tiny_generator, rule).astype(int)
    )
    assert difference.mean() < 0.5 and np.percentile(difference, 99) <= 2


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_and_graph_agree_with_cpu(tiny_generator, dtype):
    eager = load_generator("tiny", device="cuda", dtype=dtype, channels_last=True)
    graphed = load_generator(
        "tiny", device="cuda", dtype=dtype, channels_last=True, cuda_graph=True
    )
    reference = _decode_all(tiny_generator).astype(int)
    eager_frames, graph_frames = _decode_all(eager), _decode_all(graphed)
    np.testing.assert_array_equal(
        graph_frames, eager_frames
    )  # replay computes exactly what eager does
    assert (
        np.abs(eager_frames.astype(int) - reference).mean() < 6
    )  # half precision: close, not equal


def test_warm_up_generates_one_group_on_the_tiny_generator(tiny_generator) -> None:  # noqa: ANN001
    assert tiny_generator.backend.specialises_shapes is False
    assert tiny_generator.warm_up(64, 64, 3) > 0
