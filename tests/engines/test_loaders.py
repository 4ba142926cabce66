"""Loaders: one per variant, the id rule shared by loaded and random networks, typed backend options."""

from __future__ import annotations

import pytest
import torch

import engines
from engines.backends import FastTorchOptions, TensorRTOptions, TorchOptions, backend_options
from engines.backends.options import BackendOptions
from engines.loaders import (
    LOADERS,
    generator_from_networks,
    generator_id_of,
    load_tiny,
    random_networks,
    variant_options,
)
from engines.variants import VARIANTS


def test_every_variant_has_a_loader():
    assert set(LOADERS) == set(VARIANTS)


def test_networks_of_the_tiny_loader_give_the_recorded_id():
    generator = generator_from_networks("tiny", load_tiny(), BackendOptions())
    assert generator.generator_id == engines.TINY_GENERATOR_ID
    assert generator.backend.options.cache_key == engines.TINY_GENERATOR_ID


def test_random_networks_are_seeded_and_identified_by_the_loaders_rule():
    first, again = random_networks("tiny", seed=3), random_networks("tiny", seed=3)
    other = random_networks("tiny", seed=4)
    assert generator_id_of("tiny", first) == generator_id_of("tiny", again)
    assert generator_id_of("tiny", first) != generator_id_of("tiny", other)
    assert generator_id_of("tiny", first).startswith("tiny:")
    generator = generator_from_networks("tiny", first, BackendOptions())
    assert generator.generator_id == generator_id_of("tiny", first)
    assert generator.encoder is not None


def test_random_weights_only_for_sd_shaped_generators():
    with pytest.raises(ValueError, match="not 'nano'"):
        random_networks("nano")
    with pytest.raises(ValueError, match="unknown generator 'sd-xl'"):
        random_networks("sd-xl")


def test_variant_rules_apply_to_typed_options():
    options = variant_options(VARIANTS["nano"], BackendOptions(dtype=torch.bfloat16))
    assert options.dtype == torch.float32 and options.backend == TorchOptions(channels_last=True)


def test_flat_switches_go_to_their_backend():
    half = dict(device="cuda", dtype=torch.float16)
    assert backend_options("auto", **half, cuda_graph=True).backend == TorchOptions(cuda_graph=True)
    assert backend_options("auto", device="cpu", dtype=torch.float32).backend == TorchOptions()
    fast = backend_options("fast", **half, ahead_of_time=True, compile_cache_dir="c", max_batch=8)
    assert fast.backend == FastTorchOptions(compile_cache_dir="c", ahead_of_time=True)
    assert fast.max_batch == 8 and fast.kind == "fast"
    trt = backend_options("tensorrt", **half, compile_cache_dir="plans", channels_last=True)
    assert trt.backend == TensorRTOptions(cache_dir="plans")
