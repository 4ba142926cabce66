"""Precompiled steps on the CPU: saved once, loaded with the live weights (here and in a fresh
process), and every bad artifact refused with a log line."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from engines.backends.aot_cache import AotKey, file_sha256
from engines.backends.precompiled import PrecompiledStepCache, plain_tensors

pytestmark = pytest.mark.slow  # one torch.compile of a small step, about 20 s on two cores

REPO = Path(__file__).resolve().parents[2]


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


def expected(step: nn.Module) -> torch.Tensor:
    with plain_tensors():
        return step(*INPUTS)[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache folder holding one freshly saved step of SmallStep."""
    root = tmp_path_factory.mktemp("precompiled")
    step = SmallStep().eval()
    with torch.inference_mode():  # as the backend builds it: from generate_group's inference mode
        runner = PrecompiledStepCache(root).build(key(), step, INPUTS)
    torch.testing.assert_close(runner(*INPUTS)[0], expected(step))
    return root


@pytest.fixture
def cache(built, tmp_path) -> PrecompiledStepCache:
    """A private copy of the built cache, free to damage."""
    root = tmp_path / "precompiled"
    shutil.copytree(built, root)
    return PrecompiledStepCache(root)


def test_a_saved_step_loads_with_the_live_weights(cache):
    artifact, record = cache.paths(key())
    fields = json.loads(record.read_text())
    assert fields["key"] == key().fields() and fields["sha256"] == file_sha256(artifact)
    other_weights = SmallStep(seed=5).eval()
    runner = cache.load(key(), other_weights)
    assert runner is not None
    # the artifact holds no weights: it computes with the module it is given
    torch.testing.assert_close(runner(*INPUTS)[0], expected(other_weights))
    assert not cache.marker(key()).exists()  # the loading marker is gone once loaded


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_a_fresh_process_loads_it_without_compiling(cache, mode):
    # The loaded guards take the dispatch keys of the loading thread's mode: loaded from inside
    # inference mode (as the backend does) they must still accept the plain tensors it calls with.
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_precompiled import INPUTS, SmallStep, expected, key
        from engines.backends.precompiled import PrecompiledStepCache
        from pathlib import Path
        step = SmallStep(seed=3).eval()
        with torch.{mode}():
            runner = PrecompiledStepCache(Path({str(cache.root)!r})).load(key(), step)
        assert runner is not None
        torch.testing.assert_close(runner(*INPUTS)[0], expected(step))
        print("LOADED")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCH_LOGS": "graph_code"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED" in done.stdout
    # Dynamo traced nothing: the frame it would have compiled came from the artifact
    assert "TRACED GRAPH" not in done.stderr


def test_a_missing_artifact_is_a_miss(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        assert PrecompiledStepCache(tmp_path).load(key(), SmallStep()) is None
    assert "no precompiled step cached" in caplog.text


def test_a_corrupted_artifact_is_refused(cache, caplog):
    artifact, _ = cache.paths(key())
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), SmallStep()) is None
    assert "is corrupted" in caplog.text


def test_another_key_is_refused(cache, caplog):
    artifact, record = cache.paths(key())
    other = key(device="another card")
    shutil.copy(artifact, cache.paths(other)[0])
    shutil.copy(record, cache.paths(other)[1])
    with caplog.at_level(logging.WARNING):
        assert cache.load(other, SmallStep()) is None
    assert "another generator, card or version" in caplog.text


def test_an_artifact_that_crashed_a_process_is_recorded_and_skipped(cache, caplog):
    """A marker left by a dead process: the artifact is recorded as failing, not loaded again."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    cache.marker(key()).write_text(dead.stdout.strip())
    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), SmallStep()) is None
    assert "died while loading it" in caplog.text
    assert "died while loading it" in (cache.known_failure(key()) or "")
    assert cache.load(key(), SmallStep()) is None  # and stays refused


def test_an_unloadable_artifact_is_refused(cache, caplog):
    artifact, _ = cache.paths(key())
    artifact.write_bytes(b"not a compiled function")
    cache.write_record(key())  # a record that matches the garbage: the loader itself refuses it
    with caplog.at_level(logging.WARNING):
        assert cache.load(key(), SmallStep()) is None
    assert "does not load" in caplog.text
    assert not cache.marker(key()).exists()
