"""The one-step batch generator: groups, random access, chained order, identity checks."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from engines.schedule import mix_latent, stream_noise
from engines.stream import CONTINUE, FROM_INIT, FROM_PREVIOUS, Group, generation_groups
from prompts.chunk import ChunkFormatError, make_prefix
from prompts.stream_model import CHAINED, CHUNK_RESET, SD_LATENT, GeneratorMismatchError
from prompts.testing import level_chunks
from tests.engines.conftest import TEST_SIZE, init_latent


def open_stream(generator, rule=CHUNK_RESET, **kwargs):
    return generator.open_stream(
        width=TEST_SIZE,
        height=TEST_SIZE,
        init_latent=init_latent(),
        noise_seed=88,
        prev_latent_weight=0.05,
        prev_latent_rule=rule,
        **kwargs,
    )


def test_chunk_reset_groups_follow_keyframes():
    assert generation_groups(CHUNK_RESET, 0, 12, [0, 4, 8, 12], 4) == [
        Group(0, 4, FROM_INIT),
        Group(4, 8, FROM_PREVIOUS),
        Group(8, 12, FROM_PREVIOUS),
    ]
    # short final interval: the last frame is a keyframe and its own group
    assert generation_groups(CHUNK_RESET, 8, 11, [8, 10], 4) == [
        Group(8, 10, FROM_INIT),
        Group(10, 11, FROM_PREVIOUS),
    ]


def test_chained_groups_end_on_keyframes_and_cross_chunks():
    assert generation_groups(CHAINED, 0, 8, [0, 4, 8], 4) == [
        Group(0, 1, FROM_INIT),
        Group(1, 5, FROM_PREVIOUS),
        Group(5, 8, FROM_PREVIOUS),
    ]
    # chunk 1 starts with frame 8, the end of the group (4, 8] begun in chunk 0
    assert generation_groups(CHAINED, 8, 16, [8, 12, 16], 4) == [
        Group(8, 9, CONTINUE),
        Group(9, 13, FROM_PREVIOUS),
        Group(13, 16, FROM_PREVIOUS),
    ]


def test_noise_is_numpy_randomstate():
    noise = stream_noise(88, 64, 128, SD_LATENT)
    expected = np.random.RandomState(88).standard_normal((1, 4, 8, 16)).astype(np.float32)
    assert noise.dtype == np.float32 and np.array_equal(noise, expected)


def test_decode_shapes_and_dtype(tiny_generator):
    chunks = level_chunks(tiny_generator.generator_id, frames=13, interval=4, chunk_frames=8)
    stream = open_stream(tiny_generator)
    frames = [stream.decode_chunk(chunk) for chunk in chunks]
    assert [f.shape for f in frames] == [(8, TEST_SIZE, TEST_SIZE, 3), (5, TEST_SIZE, TEST_SIZE, 3)]
    assert all(f.dtype == np.uint8 for f in frames)
    assert frames[0].std() > 1.0  # not a constant picture


def test_iter_chunk_hands_each_group_over_and_equals_decode_chunk(tiny_generator):
    chunks = level_chunks(tiny_generator.generator_id, frames=16, interval=4, chunk_frames=8)
    decoded = open_stream(tiny_generator)
    expected = [decoded.decode_chunk(chunk) for chunk in chunks]
    streamed = open_stream(tiny_generator)
    sizes = []
    for chunk, whole in zip(chunks, expected, strict=True):
        batches = list(streamed.iter_chunk(chunk))
        sizes.append([b.shape[0] for b in batches])
        np.testing.assert_array_equal(
            np.concatenate(batches), whole
        )  # and the state advanced alike
    assert sizes == [[4, 4], [4, 3, 1]]  # one batch a group: frames 0-3, 4-7 | 8-11, 12-14, 15


def test_first_frame_matches_forward_with_mixed_init(tiny_generator):
    chunk = level_chunks(tiny_generator.generator_id, frames=8, interval=4, chunk_frames=8)[0]
    frames = open_stream(tiny_generator).decode_chunk(chunk)
    latent = mix_latent(
        torch.from_numpy(init_latent()),
        torch.from_numpy(stream_noise(88, TEST_SIZE, TEST_SIZE, SD_LATENT)),
        0.05,
    )
    context = torch.from_numpy(chunk.keyframes[0].context()).unsqueeze(0)
    with torch.no_grad():
        _, image = tiny_generator.forward(latent, context)
    expected = (
        ((image[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    )
    assert np.abs(frames[0].astype(int) - expected.astype(int)).max() <= 1


def test_random_access_cold_chunk_equals_sequential(tiny_generator):
    chunks = level_chunks(tiny_generator.generator_id, frames=24, interval=4, chunk_frames=8)
    sequential = open_stream(tiny_generator)
    in_order = [sequential.decode_chunk(chunk) for chunk in chunks]
    cold = open_stream(tiny_generator).decode_chunk(chunks[2], prefix=make_prefix(chunks[1]))
    np.testing.assert_array_equal(cold, in_order[2])


def test_chunk_without_its_previous_keyframe_is_refused(tiny_generator):
    chunks = level_chunks(tiny_generator.generator_id, frames=16, interval=4, chunk_frames=8)
    with pytest.raises(ChunkFormatError, match="switch prefix"):
        open_stream(tiny_generator).decode_chunk(chunks[1])


def test_switching_level_uses_the_prefix(tiny_generator):
    level0 = level_chunks(
        tiny_generator.generator_id, frames=16, interval=4, chunk_frames=8, level=0, seed=0
    )
    level1 = level_chunks(
        tiny_generator.generator_id, frames=16, interval=4, chunk_frames=8, level=1, seed=5
    )
    stream = open_stream(tiny_generator)
    stream.decode_chunk(level0[0])
    with pytest.raises(ChunkFormatError):
        stream.decode_chunk(level1[1])  # level 0's keyframe is not level 1's: needs a prefix
    switched = stream.decode_chunk(level1[1], prefix=make_prefix(level1[0]))
    reference = open_stream(tiny_generator)
    reference.decode_chunk(level1[0])
    np.testing.assert_array_equal(switched, reference.decode_chunk(level1[1]))


def test_chained_state_runs_across_chunks(tiny_generator):
    chunks = level_chunks(tiny_generator.generator_id, frames=16, interval=4, chunk_frames=8)
    stream = open_stream(tiny_generator, CHAINED)
    first = stream.decode_chunk(chunks[0])
    second = stream.decode_chunk(chunks[1])
    reset = open_stream(tiny_generator)
    reset_first = reset.decode_chunk(chunks[0])
    assert not np.array_equal(first, reset_first)  # groups differ: {0}, (0, 4], ...
    assert not np.array_equal(second, reset.decode_chunk(chunks[1]))
    with pytest.raises(ValueError, match="chained"):
        open_stream(tiny_generator, CHAINED).decode_chunk(chunks[1], prefix=make_prefix(chunks[0]))


def test_generator_mismatch_is_refused(tiny_generator):
    chunk = level_chunks("sd-turbo:0123456789abcdef", frames=8, interval=4, chunk_frames=8)[0]
    with pytest.raises(GeneratorMismatchError, match="sd-turbo:0123456789abcdef"):
        open_stream(tiny_generator).decode_chunk(chunk)
    with pytest.raises(GeneratorMismatchError):
        open_stream(tiny_generator, generator_id="sd-turbo:0123456789abcdef")
    # allowed: decoded without a word (the caller asked for it and tells its user once)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = open_stream(tiny_generator, allow_generator_mismatch=True).decode_chunk(chunk)
    assert frames.shape[0] == 8


def test_prefix_must_be_a_prefix(tiny_generator):
    chunks = level_chunks(tiny_generator.generator_id, frames=16, interval=4, chunk_frames=8)
    with pytest.raises(ValueError, match="switch prefix"):
        open_stream(tiny_generator).decode_chunk(chunks[1], prefix=chunks[0])
    with pytest.raises(ValueError, match="prefix"):
        open_stream(tiny_generator).decode_chunk(make_prefix(chunks[0]))


def test_bad_stream_parameters(tiny_generator):
    with pytest.raises(ValueError, match="multiple of 64"):
        tiny_generator.open_stream(width=100, height=64, init_latent=init_latent())
    with pytest.raises(ValueError, match="init latent has shape"):
        tiny_generator.open_stream(width=128, height=64, init_latent=init_latent())
    with pytest.raises(ValueError, match="previous-latent rule"):
        tiny_generator.open_stream(
            width=64, height=64, init_latent=init_latent(), prev_latent_rule="x"
        )
    bad = dataclasses.replace(
        level_chunks(tiny_generator.generator_id, frames=8, interval=4, chunk_frames=8)[0]
    )
    assert bad.frame_count == 8


@pytest.mark.parametrize(("rule", "frames"), [(CHUNK_RESET, 24), (CHAINED, 17)])
def test_long_groups_run_in_slices_with_the_same_frames_and_x0(
    tiny_generator, monkeypatch, rule, frames
):
    """A group longer than the backend's batch runs in slices: same frames, same carried x0.

    (CPU BLAS kernels may round differently for batches under 8, so the slices here are 8.)
    """
    chunks = level_chunks(
        tiny_generator.generator_id, frames=frames, interval=16, chunk_frames=frames
    )
    whole = open_stream(tiny_generator, rule)
    expected = whole.decode_chunk(chunks[0])
    options = tiny_generator.backend.options
    monkeypatch.setattr(
        tiny_generator.backend, "options", dataclasses.replace(options, max_batch=8)
    )
    sliced = open_stream(tiny_generator, rule)
    items = list(sliced.iter_slices(chunks[0]))
    assert [sum(b.shape[0] for b in item) for item in items] == (
        [8, 8, 7, 1] if rule == CHUNK_RESET else [1, 8, 8]
    )
    np.testing.assert_array_equal(np.concatenate([b for item in items for b in item]), expected)
    assert torch.equal(sliced._last_x0, whole._last_x0)
    assert torch.equal(sliced._group_input, whole._group_input)
