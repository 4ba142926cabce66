"""The fast path's parts: float8 linears, compile cache, group step, frame sinks; the CUDA backend on a GPU."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from engines.backends import BackendOptions, FastTorchOptions, FrameSink, make_backend
from engines.backends.compile_cache import (
    COMPILE_CACHE_ENV,
    compile_cache_dir,
    configure_compile_cache,
)
from engines.backends.fast_torch import ATTENTION_FIRST, attention_kernels
from engines.backends.fp8 import Fp8Linear, convert_linears_to_fp8
from engines.loaders import load_tiny
from engines.schedule import mix_latent
from prompts.testing import level_chunks
from tests.engines.conftest import TEST_SIZE, init_latent

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_fp8_linear_is_close_to_the_float_linear():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(5, 16, 64)
    with torch.no_grad():
        exact, quantised = linear(x), Fp8Linear(linear)(x)
    assert quantised.shape == exact.shape
    relative = (quantised - exact).norm() / exact.norm()
    assert 0 < relative < 0.08  # e4m3 has 3 mantissa bits: a few percent, never zero


def test_fp8_conversion_keeps_context_linears_and_sizes_it_cannot_run():
    unet = load_tiny().unet
    converted = convert_linears_to_fp8(unet)
    names = {name for name, module in unet.named_modules() if isinstance(module, Fp8Linear)}
    assert converted == len(names) > 0
    assert all(".attentions." in f".{name}" for name in names)
    assert not any(name.endswith(("attn2.to_k", "attn2.to_v")) for name in names)
    assert isinstance(unet.get_submodule("time_embedding.linear_1"), torch.nn.Linear)


def test_compile_cache_folder_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(COMPILE_CACHE_ENV, raising=False)
    assert compile_cache_dir().name == "inductor"
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "env"))
    assert compile_cache_dir() == tmp_path / "env"
    assert compile_cache_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset-by-test")  # restored after the test
    monkeypatch.setenv("TRITON_CACHE_DIR", "unset-by-test")
    monkeypatch.delenv("TRITON_CACHE_DIR")
    path = configure_compile_cache(tmp_path / "given")
    assert path.is_dir() and os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(path)
    assert os.environ["TRITON_CACHE_DIR"] == str(path / "triton")


def test_fast_backend_is_cuda_half_only():
    unet, decoder = torch.nn.Identity(), torch.nn.Identity()
    with pytest.raises(ValueError, match="needs a CUDA device"):
        make_backend(unet, decoder, BackendOptions(backend=FastTorchOptions()))


def test_unknown_attention_kernel_is_refused():
    unet, decoder = torch.nn.Identity(), torch.nn.Identity()
    with pytest.raises(ValueError, match="attention 'fastest'"):
        make_backend(
            unet,
            decoder,
            BackendOptions(device="cuda", backend=FastTorchOptions(attention="fastest")),
        )


@pytest.mark.parametrize("choice", ["cudnn", "flash", "efficient"])
def test_attention_choice_goes_first_while_tracing_and_only_then(choice):
    before = torch._C._get_sdp_priority_order()
    with attention_kernels(choice):
        order = torch._C._get_sdp_priority_order()
        assert order[0] == int(ATTENTION_FIRST[choice])
        assert sorted(order) == sorted(before)  # the others stay behind it as fallbacks
        query = torch.randn(1, 2, 5, 8)
        assert (
            torch.nn.functional.scaled_dot_product_attention(query, query, query).shape
            == query.shape
        )
    assert torch._C._get_sdp_priority_order() == before
    with attention_kernels("auto"):
        assert torch._C._get_sdp_priority_order() == before


def test_generate_group_mixes_then_generates(tiny_generator):
    prev, noise, context = (
        torch.randn(1, 4, 8, 8),
        torch.randn(1, 4, 8, 8),
        torch.randn(3, 77, 1024),
    )
    latent_input, x0, frames = tiny_generator.backend.generate_group(prev, noise, 0.05, context)
    assert torch.equal(latent_input, mix_latent(prev, noise, 0.05))
    expected_x0, expected_frames = tiny_generator.backend.generate(
        latent_input.expand(3, -1, -1, -1), context
    )
    assert torch.equal(x0, expected_x0) and torch.equal(frames, expected_frames)
    same, _, _ = tiny_generator.backend.generate_group(latent_input, noise, 1.0, context)
    assert torch.equal(same, latent_input)  # weight 1: the chained rule's "continue" input, exactly


def test_frame_sink_hands_batches_over_once_in_order():
    sink = FrameSink(5, (2, 3, 3))
    sink.add(torch.full((2, 2, 3, 3), 7, dtype=torch.uint8))
    assert [b.max() for b in sink.ready()] == [7]
    sink.add(torch.full((3, 2, 3, 3), 9, dtype=torch.uint8))
    assert [b.shape[0] for b in sink.ready(wait=True)] == [3]  # only what was not handed out
    assert list(sink.ready()) == []


class _InFlightSink(FrameSink):
    """A sink whose copies land only when waited for (as a device still computing)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.waited: list[int] = []

    def _landed(self, index: int, wait: bool) -> bool:
        if wait:
            self.waited.append(index)
        return wait


def test_frame_sink_waits_for_all_but_the_newest_queued_batches():
    """A stream hands batch k over while batch k + 1 is still queued on the device."""
    sink = _InFlightSink(6, (1,))
    for value in (1, 2, 3):
        sink.add(torch.full((2, 1), value, dtype=torch.uint8))
    assert list(sink.ready()) == []  # nothing has landed by itself
    assert [int(b.max()) for b in sink.ready(wait=True, queued=1)] == [1, 2]
    assert sink.waited == [0, 1]  # the newest batch was not waited for
    assert [int(b.max()) for b in sink.ready(wait=True)] == [3]


def test_frame_sink_gathers_batches_and_counts():
    sink = FrameSink(5, (2, 3, 3))
    sink.add(torch.full((2, 2, 3, 3), 7, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="2 of 5"):
        sink.result()
    sink.add(torch.full((3, 2, 3, 3), 9, dtype=torch.uint8))
    frames = sink.result()
    assert frames.shape == (5, 2, 3, 3) and frames[:2].max() == 7 and frames[2:].min() == 9


def _decode_all(generator):
    chunks = level_chunks(generator.generator_id, frames=16, interval=4, chunk_frames=8)
    stream = generator.open_stream(width=TEST_SIZE, height=TEST_SIZE, init_latent=init_latent())
    return np.concatenate([stream.decode_chunk(chunk) for chunk in chunks])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("compile_mode", ["none", "default"])
def test_fast_backend_agrees_with_eager_half(tiny_generator, tmp_path, compile_mode):
    from engines import load_generator

    fast = load_generator(
        "tiny",
        device="cuda",
        backend="fast",
        compile_mode=compile_mode,
        compile_cache_dir=str(tmp_path),
    )
    eager = load_generator("tiny", device="cuda", backend="torch", dtype=torch.float16)
    fast_frames, eager_frames = _decode_all(fast), _decode_all(eager)
    assert np.abs(fast_frames.astype(int) - eager_frames.astype(int)).mean() < 3
    assert np.abs(fast_frames.astype(int) - _decode_all(tiny_generator).astype(int)).mean() < 6
    np.testing.assert_array_equal(_decode_all(fast), fast_frames)  # graph replay is deterministic


@pytest.mark.gpu
@needs_cuda
def test_short_group_runs_padded_in_the_captured_larger_graph():
    tiny = load_tiny()
    backend = make_backend(
        tiny.unet,
        tiny.decoder,
        BackendOptions(
            device="cuda", dtype=torch.float16, backend=FastTorchOptions(compile_mode="none")
        ),
    )
    prev, noise = torch.randn(1, 4, 8, 8, device="cuda"), torch.randn(1, 4, 8, 8, device="cuda")
    context = torch.randn(4, 77, 1024, device="cuda")
    _, x0_full, frames_full = backend.generate_group(prev, noise, 0.05, context)
    _, x0_short, frames_short = backend.generate_group(prev, noise, 0.05, context[:3])
    assert len(backend._group_graphs) == 1  # no second capture for the short group
    assert x0_short.shape[0] == 3 and frames_short.shape[0] == 3
    torch.testing.assert_close(x0_short, x0_full[:3])
    assert torch.equal(frames_short, frames_full[:3])


@pytest.mark.gpu
@needs_cuda
def test_pinned_sink_matches_the_plain_one():
    from engines.backends.host_copy import PinnedFrameSink

    batches = [
        torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, device="cuda") for n in (3, 4)
    ]
    pinned, plain = PinnedFrameSink(7, (16, 16, 3), torch.device("cuda")), FrameSink(7, (16, 16, 3))
    for batch in batches:
        pinned.add(batch)
        plain.add(batch)
    handed = list(pinned.ready(wait=True))  # each batch once its copy has landed, in order
    assert [b.shape[0] for b in handed] == [3, 4] and list(pinned.ready()) == []
    for batch, host in zip(batches, handed, strict=True):
        np.testing.assert_array_equal(host, batch.cpu().numpy())
    np.testing.assert_array_equal(pinned.result(), plain.result())


@pytest.mark.gpu
@needs_cuda
def test_ahead_of_time_step_is_cached_and_agrees_with_the_compiled_one(tmp_path, caplog):
    """First backend builds the package, a second (a restarted daemon) loads it; YUV frames as the eager path."""
    from engines import load_generator
    from engines.colour import YUV420P

    def frames(generator):
        stream = generator.open_stream(
            width=TEST_SIZE, height=TEST_SIZE, init_latent=init_latent(), frame_format=YUV420P
        )
        chunks = level_chunks(generator.generator_id, frames=8, interval=4, chunk_frames=8)
        return stream.decode_chunk(chunks[0]), generator.backend.compiled_how(YUV420P)

    options = dict(
        device="cuda", backend="fast", compile_cache_dir=str(tmp_path), ahead_of_time=True
    )
    built, how = frames(load_generator("tiny", **options))
    assert how == ["ahead-of-time"]
    assert len(list((tmp_path / "aot").glob("*.pt2"))) == 1
    with caplog.at_level("INFO"):
        loaded, how = frames(load_generator("tiny", **options))
    assert how == ["ahead-of-time"] and "compiling" not in caplog.text  # loaded, not compiled again
    np.testing.assert_array_equal(loaded, built)
    eager, _ = frames(load_generator("tiny", device="cuda", backend="torch", dtype=torch.float16))
    assert np.abs(built.astype(int) - eager.astype(int)).mean() < 3
