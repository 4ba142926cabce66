"""The ahead-of-time step cache on the CPU: build once, load, and refuse every bad package with a log line."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from engines.backends import aot_cache
from engines.backends.aot_cache import AotKey, AotStepCache, file_sha256

pytestmark = pytest.mark.slow  # one AOTInductor compile (C++), about 20 s on two cores


class SmallStep(nn.Module):
    """A convolution and a scalar input: what the group step has (weights, a timestep input)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.conv(x) * scale).relu(), x.mean()


def key(**changes) -> AotKey:
    fields = dict(
        generator_id="tiny:test",
        device="cpu",
        torch=torch.__version__,
        cuda=None,
        diffusers="0",
        code="c0de",
        dtype="float32",
        frame_format="rgb24",
        input_shapes=((2, 3, 8, 8), ()),
        options="",
    )
    return AotKey(**{**fields, **changes})


INPUTS = (torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor(2.0))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache folder holding one freshly built package of SmallStep."""
    root = tmp_path_factory.mktemp("aot")
    step = SmallStep().eval()
    runner = AotStepCache(root).build(key(), step, INPUTS)
    torch.testing.assert_close(runner(*INPUTS)[0], step(*INPUTS)[0])
    return root


@pytest.fixture
def cache(built, tmp_path) -> AotStepCache:
    """A private copy of the built cache, free to damage."""
    root = tmp_path / "aot"
    shutil.copytree(built, root)
    return AotStepCache(root)


def test_a_cached_step_loads_with_the_live_weights(cache):
    package, record = cache.paths(key())
    fields = json.loads(record.read_text())
    assert fields["key"] == key().fields() and fields["sha256"] == file_sha256(package)
    other_weights = SmallStep(seed=5).eval()
    runner = cache.load(key(), other_weights)
    assert runner is not None
    # the package holds no weights of its own: it computes with the module it is given
    torch.testing.assert_close(runner(*INPUTS)[0], other_weights(*INPUTS)[0])


def test_a_missing_package_is_a_miss(cache, caplog):
    with caplog.at_level(logging.INFO):
        assert cache.load(key(generator_id="tiny:other"), SmallStep()) is None
    assert "no ahead-of-time step cached" in caplog.text


def test_a_corrupted_package_is_not_trusted(cache, caplog):
    package, _ = cache.paths(key())
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0xFF
    package.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), SmallStep()) is None
    assert "is corrupted" in caplog.text


def test_a_record_of_another_card_or_version_is_not_trusted(cache, caplog):
    _, record = cache.paths(key())
    fields = json.loads(record.read_text())
    fields["key"]["torch"] = "1.0"
    record.write_text(json.dumps(fields))
    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), SmallStep()) is None
    assert "another generator, card or version" in caplog.text


def test_an_unreadable_record_is_not_trusted(cache, caplog):
    _, record = cache.paths(key())
    record.write_text("{ half a record")
    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), SmallStep()) is None
    assert "is unreadable" in caplog.text


def test_a_package_that_does_not_load_is_not_trusted(cache, caplog):
    package, record = cache.paths(key())
    package.write_bytes(
        b"PK\x03\x04 not a package"
    )  # the checksum is made to match: only loading can tell
    fields = json.loads(record.read_text())
    fields["sha256"] = file_sha256(package)
    record.write_text(json.dumps(fields))
    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), SmallStep()) is None
    assert "does not load" in caplog.text


def test_a_module_without_the_weights_the_package_needs_is_refused(cache, caplog):
    class Renamed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.other = nn.Conv2d(3, 4, 3, padding=1)

    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), Renamed()) is None
    assert "needs weights the module lacks: conv." in caplog.text


def test_file_names_are_readable_and_keys_unique():
    assert key().file_stem().startswith("tiny_test-rgb24-2x3x8x8-")
    assert key().file_stem() != key(device="NVIDIA H100 80GB HBM3 sm90").file_stem()


def test_a_failed_build_is_remembered_for_its_key_only(tmp_path, caplog):
    cache = AotStepCache(tmp_path / "aot")
    assert cache.known_failure(key()) is None
    with caplog.at_level(logging.WARNING):
        cache.mark_failed(key(), ValueError("Inductor could not fuse"))
    assert "recorded in" in caplog.text
    assert cache.known_failure(key()) == "ValueError: Inductor could not fuse"
    assert cache.known_failure(key(torch="9.9")) is None  # another torch may build it
    assert cache.load(key(), SmallStep()) is None  # a failure record is no package


def test_an_unprobed_package_that_fails_to_load_is_recorded_and_never_loaded_here(cache):
    package, record = cache.paths(key())
    package.write_bytes(b"PK\x03\x04 not a package")
    fields = json.loads(record.read_text())
    fields["sha256"] = file_sha256(package)
    del fields["probed"]  # as a package from an older release: never loaded by a probe yet
    record.write_text(json.dumps(fields))
    with pytest.raises(RuntimeError, match="ended a probe process"):
        cache.load(key(), SmallStep())
    assert "ended a probe process (exit 1)" in cache.known_failure(key())


def test_a_loader_that_crashes_takes_down_the_probe_not_this_process(tmp_path, monkeypatch):
    crash = "import os, signal, sys; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(aot_cache, "PROBE_CODE", crash)
    assert aot_cache.probe_load(tmp_path / "any.pt2").startswith(
        "loading it ended a probe process (signal 11)"
    )
