"""The fit's progress bar: frames fitted and the level, and an optimiser speed only when one runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from authoring.build import FitOptions, fit_level
from authoring.fit import KeyframeStats, LevelFitter
from authoring.levels import LevelSpec
from authoring.presets import get_preset
from authoring.source import SourceVideo

pytestmark = pytest.mark.slow


class Bar:
    """Records what a tqdm bar is told."""

    def __init__(self) -> None:
        self.postfixes: list[dict[str, str]] = []
        self.updates = 0

    def set_postfix(
        self, facts: dict[str, str] | None = None, refresh: bool = True, **kw: Any
    ) -> None:
        self.postfixes.append(dict(facts or {}, **kw))

    def update(self, n: int = 1) -> None:
        self.updates += n


def test_the_bar_shows_frames_fitted_and_the_optimisers_speed(tiny_generator: Any) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    bar = Bar()
    original = LevelFitter.fit

    def fit_with_bar(
        self: LevelFitter,
        state: Any = None,
        on_keyframe: Any = None,
        progress: Any = None,
        **hooks: Any,
    ) -> Any:
        return original(self, state, on_keyframe=on_keyframe, progress=bar, **hooks)

    LevelFitter.fit = fit_with_bar  # type: ignore[method-assign]
    try:
        options = FitOptions(preset=get_preset("demo").with_budgets(3, 2))
        init = np.zeros((1, 4, 8, 8), np.float32)
        fit_level(
            tiny_generator,
            SourceVideo(frames, 5.0),
            init,
            LevelSpec(2, 2),
            4,
            options,
            progress=False,
        )
    finally:
        LevelFitter.fit = original  # type: ignore[method-assign]
    assert bar.postfixes[0] == {"frames": "0/5"}  # before the first keyframe is done
    assert [p["frames"] for p in bar.postfixes[1:]] == ["1/5", "3/5", "5/5"] and bar.updates == 3
    assert all(p["psnr"].endswith(" dB") and p["iters"].endswith("/s") for p in bar.postfixes[1:])


def test_no_speed_is_shown_for_a_keyframe_the_optimiser_never_ran_on() -> None:
    from authoring.plan import KeyframeSpan

    fitter = LevelFitter.__new__(LevelFitter)
    fitter.frames = np.zeros((90, 8, 8, 3), np.uint8)
    stats = KeyframeStats(frame=30, iterations=0, seconds=0.2, loss=0.03, psnr=20.5)
    facts = fitter._progress_facts(KeyframeSpan(3, 20, 30, False), stats)
    assert facts == {"frames": "31/90", "psnr": "20.50 dB", "loss": "0.0300"}
