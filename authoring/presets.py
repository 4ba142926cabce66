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
    latent_fraction: float = (
        0.0  # share of each budget spent on the x0-vs-encoded-target loss first
    )
    delta_penalty: float = (
        0.0  # rate term: weight of mean |U - U_prev| + mean |V - V_prev| (warm starts)
    )
    worst_frame_extra: float = 2.0  # extra weight on the previous iteration's worst frame
    improvement: float = 1e-4  # relative loss drop that counts as an improvement

    def with_target(self, target_psnr: float | None) -> FitPreset:
        """The same schedule with another quality target."""
        return replace(self, target_psnr=target_psnr)

    def with_budgets(self, first: int, later: int) -> FitPreset:
        """The same schedule with other iteration budgets (patience scaled down to fit)."""
        return replace(
            self, first_iterations=first, later_iterations=later,
            first_patience=min(self.first_patience, max(1, first // 4)),
            later_patience=min(self.later_patience, max(1, later // 4)),
        )  # fmt: skip


PRESETS: dict[str, FitPreset] = {
    # The original release: 10000 / 1500 iterations, halve lr when 300 / 20 iterations bring
    # no new best, never stop early.
    "reference": FitPreset(
        name="reference", first_iterations=10000, later_iterations=1500,
        first_patience=300, later_patience=20, lr=0.1, warm_lr=0.1, min_lr=0.001,
        stop_after_plateaus=0, target_psnr=None,
    ),
    # Operator default: a tenth of the budget, a gentler step from the warm start plus the rate
    # term (1.4x fewer coded bytes per keyframe at equal PSNR, docs/inversion.md), stop on a
    # plateau at the smallest learning rate; with a faithful encoder (TAESD) the first half of
    # each budget fits x0 to the encoded frames, skipping the decoder's forward and backward.
    "fast": FitPreset(
        name="fast", first_iterations=1000, later_iterations=150,
        first_patience=50, later_patience=10, lr=0.1, warm_lr=0.01, min_lr=0.001,
        stop_after_plateaus=2, target_psnr=None, latent_fraction=0.5, delta_penalty=0.03,
    ),
    # Seconds-scale ladders for `promptus demo` and CPU runs: with a faithful encoder the whole
    # budget is spent on the latent objective (no decoder backward pass, 20-40x cheaper on CPU).
    "demo": FitPreset(
        name="demo", first_iterations=80, later_iterations=12,
        first_patience=10, later_patience=4, lr=0.1, warm_lr=0.03, min_lr=0.005,
        stop_after_plateaus=1, target_psnr=None, latent_fraction=1.0,
    ),
    # The prompt encoder's factors as they come (nano, whose encoder was trained with the
    # generator): no refinement, so a ladder costs one encoder pass and the regeneration. On the
    # held-out demo clip the demo preset's 12 latent-objective steps lowered r8n10 from 20.6 to
    # 18.1 dB (the objective is not nano's pixel error), docs/inversion.md.
    "encoder": FitPreset(
        name="encoder", first_iterations=0, later_iterations=0,
        first_patience=1, later_patience=1, lr=0.0, warm_lr=0.0, min_lr=0.0,
        stop_after_plateaus=1, target_psnr=None,
    ),
}  # fmt: skip


def get_preset(name: str) -> FitPreset:
    """The named preset; ValueError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None
