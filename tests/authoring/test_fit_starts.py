"""Where each keyframe's fit starts and what it may spend (``authoring.starts``), without a
generator."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from authoring.fit_state import FitState, LevelConfig
from authoring.plan import KeyframeSpan
from authoring.presets import get_preset
from authoring.starts import KeyframeStarts

FIRST, LATER = KeyframeSpan(0, 0, 0, True), KeyframeSpan(1, 0, 4, False)


def _starts(preset: str = "fast", latent: bool = False, **changes: Any) -> KeyframeStarts:
    config = LevelConfig(rank=2, interval=4, chunk_frames=8, seed=3, **changes)
    problems: Any = SimpleNamespace(latent_targets=torch.zeros(1) if latent else None)
    return KeyframeStarts(config, get_preset(preset), problems)


def test_keyframe_zero_starts_cold_on_the_first_budget_and_later_ones_warm() -> None:
    starts = _starts()
    assert starts.starts_cold(FIRST) and starts.first_budget(FIRST)
    assert not starts.starts_cold(LATER) and not starts.first_budget(LATER)
    assert starts.learning_rate(FIRST) == 0.1 and starts.learning_rate(LATER) == 0.01
    assert starts.schedule(FIRST, 7, 0.1, final=True).patience == 50
    assert starts.schedule(LATER, 7, 0.01, final=False).patience == 10
    assert _starts(warm_start=False).starts_cold(LATER)
    assert _starts("paper").starts_cold(LATER)  # the release starts every keyframe cold
    assert [_starts("paper").sequential_schedule(s).extra_steps for s in (FIRST, LATER)] == [0, 2]


def test_a_warm_start_copies_the_previous_factors_and_a_cold_one_is_seeded() -> None:
    starts = _starts()
    previous = (np.full((77, 2), 0.5, np.float32), np.full((2, 1024), 0.25, np.float32))
    u, v = starts.initial_factors(LATER, FitState(factors=previous))
    assert np.array_equal(u, previous[0]) and np.array_equal(v, previous[1])
    assert u is not previous[0]
    cold = _starts(warm_start=False)
    a, b = (
        cold.initial_factors(LATER, FitState(factors=previous)),
        cold.initial_factors(LATER, FitState()),
    )
    assert a[0].shape == (77, 2) and a[1].shape == (2, 1024)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], previous[0])


def test_the_budget_splits_into_coarse_latent_and_pixel_phases() -> None:
    assert _starts("demo").phase_budgets(FIRST) == (("coarse", 0), ("latent", 0), ("pixel", 80))
    assert _starts("demo", latent=True).phase_budgets(LATER) == (
        ("coarse", 0),
        ("latent", 12),
        ("pixel", 0),
    )
    starts = _starts("fast", latent=True)
    starts.preset = replace(starts.preset, coarse_fraction=0.3, latent_fraction=0.5)
    assert starts.phase_budgets(LATER) == (("coarse", 15), ("latent", 25), ("pixel", 10))
