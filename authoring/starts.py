"""Where each keyframe's fit starts and what it may spend.

The start: a prompt encoder's prediction when the level has one, else the previous keyframe's
float factors (warm start), else ``torch.rand`` seeded by the level's seed and the keyframe
number. The spend: keyframe 0 fitted from random factors takes the preset's first-keyframe
budget and patience, every other keyframe the later ones; a cold start takes the preset's
learning rate, a warm one its warm rate. ``KeyframeStarts`` turns these rules into the
schedules the batched phases (``PhaseSchedule``) and the release's loop
(``SequentialSchedule``) run under.
"""

from __future__ import annotations

import torch

from authoring.batched import PhaseSchedule
from authoring.fit_state import FactorPredictor, Factors, FitState, LevelConfig
from authoring.losses import mse_from_psnr
from authoring.plan import KeyframeSpan
from authoring.presets import FitPreset
from authoring.problems import KeyframeProblems
from authoring.sequential import EXTRA_WORST_STEPS, SequentialSchedule
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

PHASES = ("coarse", "latent", "pixel")  # the batched engine's phases, in the order they run


class KeyframeStarts:
    """The starting factors, learning rates and budgets of one level's keyframes."""

    def __init__(
        self,
        config: LevelConfig,
        preset: FitPreset,
        problems: KeyframeProblems,
        predict_factors: FactorPredictor | None = None,
    ) -> None:
        """``problems`` gives the previous latent a prompt encoder (``predict_factors``) reads
        and whether the level has latent targets (the latent phase's budget)."""
        self.config = config
        self.preset = preset
        self.problems = problems
        self.predict_factors = predict_factors

    def initial_factors(self, span: KeyframeSpan, state: FitState) -> Factors:
        """Where a keyframe's fit starts: a prompt encoder's prediction when the fitter has one,
        else the previous keyframe's float factors (warm start), else ``torch.rand`` seeded by
        the level's seed and the keyframe number."""
        if self.predict_factors is not None:
            # The previous latent of the frames before the keyframe: the init latent for keyframe
            # 0, else the one the group starting at the previous keyframe was mixed from.
            prev = (
                self.problems.init_latent
                if span.index == 0
                else self.problems.unmix(torch.from_numpy(state.group_input))
            )
            u, v = self.predict_factors(span.end, prev, self.config.rank)
            return u.detach().cpu().numpy(), v.detach().cpu().numpy()
        if span.index > 0 and not self.starts_cold(span) and state.factors is not None:
            return state.factors[0].copy(), state.factors[1].copy()
        rng = torch.Generator().manual_seed(self.config.seed * 1_000_003 + span.index)
        u = torch.rand(CONTEXT_TOKENS, self.config.rank, generator=rng)
        v = torch.rand(self.config.rank, CONTEXT_DIM, generator=rng)
        return u.numpy(), v.numpy()

    def starts_cold(self, span: KeyframeSpan) -> bool:
        """Fitted from random factors: keyframe 0 or a cold start, unless a prompt encoder
        predicts the start (then every keyframe gets a later keyframe's budget and step)."""
        if self.predict_factors is not None:
            return False
        return span.index == 0 or not self.config.warm_start or self.preset.cold_start

    def learning_rate(self, span: KeyframeSpan) -> float:
        return self.preset.lr if self.starts_cold(span) else self.preset.warm_lr

    def first_budget(self, span: KeyframeSpan) -> bool:
        """Keyframe 0 fitted from random factors takes the preset's first-keyframe budget."""
        return span.index == 0 and self.predict_factors is None

    def phase_budgets(self, span: KeyframeSpan) -> tuple[tuple[str, int], ...]:
        """(phase, iterations) of the batched engine for one keyframe, in ``PHASES`` order: the
        keyframe's budget split by the preset's coarse and latent fractions (no latent phase
        without latent targets), the rest on pixels."""
        preset = self.preset
        budget = preset.first_iterations if self.first_budget(span) else preset.later_iterations
        latent = (
            round(budget * preset.latent_fraction)
            if self.problems.latent_targets is not None
            else 0
        )
        coarse = min(round(budget * preset.coarse_fraction), budget - latent)
        return tuple(zip(PHASES, (coarse, latent, budget - coarse - latent), strict=True))

    def schedule(self, span: KeyframeSpan, budget: int, lr: float, final: bool) -> PhaseSchedule:
        """The preset's learning-rate and stopping rules for one phase of one keyframe."""
        preset = self.preset
        first = self.first_budget(span)
        target = preset.target_psnr if final else None
        return PhaseSchedule(
            budget=budget, lr=[lr], min_lr=preset.min_lr,
            patience=preset.first_patience if first else preset.later_patience,
            improvement=preset.improvement, stop_after_plateaus=preset.stop_after_plateaus,
            worst_frame_extra=preset.worst_frame_extra, frames_per_step=preset.frames_per_step,
            cosine=preset.cosine, target_mse=None if target is None else mse_from_psnr(target),
        )  # fmt: skip

    def sequential_schedule(self, span: KeyframeSpan) -> SequentialSchedule:
        """The preset's budget and learning-rate rule for one keyframe's sequential loop;
        keyframe 0 gets no extra steps on its worst frame (the release's ``f_id > 0``)."""
        preset = self.preset
        first = self.first_budget(span)
        return SequentialSchedule(
            iterations=preset.first_iterations if first else preset.later_iterations,
            lr=self.learning_rate(span),
            patience=preset.first_patience if first else preset.later_patience,
            min_lr=preset.min_lr,
            extra_steps=0 if span.index == 0 else EXTRA_WORST_STEPS,
            improvement=preset.improvement,
        )
