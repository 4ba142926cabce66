"""Fitting schedules: ``reference`` (the original release's iteration counts), ``fast`` and ``demo``."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FitPreset:
    """How long and how aggressively one level is fitted."""

    name: str
    first_iterations: int  # budget of keyframe 0 (fitted alone, from scratch)
    later_iterations: int  # budget of every later keyframe
    first_patience: int  # iterations between plateau checks, keyframe 0
    later_patience: int  # iterations between plateau checks, later keyframes
    lr: float  # Adam learning rate of a cold (random) start
    warm_lr: float  # Adam learning rate of a keyframe warm-started from the previous one
    min_lr: float  # plateau halving stops here
    stop_after_plateaus: int  # stop after this many checks without improvement at min_lr (0: never)
    target_psnr: float | None  # stop once the interval's fitted PSNR (dB) reaches this
    worst_frame_extra: float = 2.0  # extra weight on the previous iteration's worst frame
    improvement: float = 1e-4  # relative loss drop that counts as an improvement

    def with_target(self, target_psnr: float | None) -> FitPreset:
        """The same schedule with another quality target."""
        return replace(self, target_psnr=target_psnr)


PRESETS: dict[str, FitPreset] = {
    # The original release: 10000 / 1500 iterations, halve lr when 300 / 20 iterations bring
    # no new best, never stop early.
    "reference": FitPreset(
        name="reference", first_iterations=10000, later_iterations=1500,
        first_patience=300, later_patience=20, lr=0.1, warm_lr=0.1, min_lr=0.001,
        stop_after_plateaus=0, target_psnr=None,
    ),
    # Operator default: a tenth of the budget, a gentler step from the warm start, stop on a
    # plateau at the smallest learning rate.
    "fast": FitPreset(
        name="fast", first_iterations=1000, later_iterations=150,
        first_patience=50, later_patience=10, lr=0.1, warm_lr=0.03, min_lr=0.001,
        stop_after_plateaus=2, target_psnr=None,
    ),
    # Seconds-scale ladders for `promptus demo` on a tiny generator.
    "demo": FitPreset(
        name="demo", first_iterations=80, later_iterations=12,
        first_patience=10, later_patience=4, lr=0.1, warm_lr=0.03, min_lr=0.005,
        stop_after_plateaus=1, target_psnr=None,
    ),
}  # fmt: skip


def get_preset(name: str) -> FitPreset:
    """The named preset; ValueError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None
