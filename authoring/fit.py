"""The fitting loop: one level's keyframes, one after another, each over the frames it shapes.

Per keyframe: U (77 x r) and V (r x 1024) are fake-quantised to 8 bits every step and the
interval's frames are scored (MSE + perceptual + |c|). Two ways to make an iteration:

* ``batched`` (``reference``, ``fast``, ``demo``): the interval (or a random subset of it) in
  one batch, extra weight on the worst frame, Adam's learning rate halved when a patience
  window brings no new best; the steps run on the device (``authoring.batched``:
  CUDA graphs, ``torch.compile``, phases at half resolution or on latents);
* ``sequential`` (``paper``): the original release's loop, one step per frame, the previous
  iteration's worst frame stepped three times in a row, its learning-rate windows
  (``authoring.sequential``, driven on a keyframe by ``authoring.sequential_span``).

The best (quantised) factors become the keyframe; the frames are then regenerated exactly as a
decoder will (``authoring.replay``), and that regeneration's x0 feeds the previous-latent term
of the next group. Each keyframe's objective is ``authoring.problems``, its start and budget
``authoring.starts``, the data carried between keyframes ``authoring.fit_state``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from authoring.batched import (
    BatchedOptimiser,
    PhaseSchedule,
    StackedProblem,
    StepOptions,
)
from authoring.fit_state import (
    FactorPredictor,
    Factors,
    FitState,
    InitialFactors,
    KeyframeStats,
    LevelConfig,
    SpanResult,
)
from authoring.losses import FitLoss, psnr_from_mse
from authoring.plan import KeyframeSpan
from authoring.presets import FitPreset
from authoring.problems import KeyframeProblems
from authoring.replay import DecoderReplay
from authoring.sequential import SequentialSchedule, StepHook
from authoring.sequential_span import fit_sequential
from authoring.starts import KeyframeStarts
from prompts.keyframe import Keyframe
from prompts.quant import quantize_tensor
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

# The fit's data types live in authoring.fit_state; importers of authoring.fit keep them.
__all__ = [
    "FactorPredictor",
    "Factors",
    "FitState",
    "InitialFactors",
    "KeyframeStats",
    "LevelConfig",
    "LevelFitter",
    "SpanResult",
]


class LevelFitter:
    """Fits the keyframes of one level of one stream to its source frames."""

    def __init__(
        self,
        generator: Any,
        frames: np.ndarray,
        init_latent: np.ndarray,
        config: LevelConfig,
        preset: FitPreset,
        loss: FitLoss,
        latent_targets: np.ndarray | None = None,
        step_options: StepOptions | None = None,
        predict_factors: FactorPredictor | None = None,
    ) -> None:
        """``latent_targets`` (encoder latents of ``frames``) enable the preset's latent phase;
        ``step_options`` choose how batched steps run (CUDA graph, compile, autocast);
        ``predict_factors`` (a prompt encoder, e.g. nano's) gives every keyframe its starting factors."""
        self.gen = generator
        self.frames = frames
        self.config = config
        self.device = torch.device(generator.device)
        self.loss = loss.to(self.device)
        self.problems = KeyframeProblems(
            generator, frames, init_latent, config, preset, self.loss, latent_targets
        )
        self.starts = KeyframeStarts(config, preset, self.problems, predict_factors)
        self.replay = DecoderReplay(self.problems)
        self.preset = preset
        self.spans = self.problems.spans
        self.optimiser = BatchedOptimiser(
            self.problems.forward, self.problems.x0, self.loss, self.loss.latent,
            step_options or StepOptions(),
        )  # fmt: skip

    @property
    def preset(self) -> FitPreset:
        return self._preset

    @preset.setter
    def preset(self, preset: FitPreset) -> None:
        """A new preset (a benchmark changes budgets between runs) reaches every part."""
        self._preset = self.problems.preset = self.starts.preset = preset

    def unet_input(self, prev_latent: torch.Tensor) -> torch.Tensor:
        """A group's UNet input (``KeyframeProblems.unet_input``)."""
        return self.problems.unet_input(prev_latent)

    def problem(self, span: KeyframeSpan, state: FitState) -> StackedProblem:
        """The fixed tensors of one keyframe's objective (``KeyframeProblems.problem``)."""
        return self.problems.problem(span, state)

    def objective(
        self, span: KeyframeSpan, state: FitState, u: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Per-frame pixel loss of the span for factors (U, V) (``KeyframeProblems.objective``)."""
        return self.problems.objective(span, state, u, v)

    def initial_factors(self, span: KeyframeSpan, state: FitState) -> Factors:
        """Where a keyframe's fit starts (``KeyframeStarts.initial_factors``)."""
        return self.starts.initial_factors(span, state)

    def fit_span(
        self,
        span: KeyframeSpan,
        state: FitState,
        initial: Factors | None = None,
        on_step: StepHook | None = None,
    ) -> SpanResult:
        """Fit keyframe ``span.index`` from an explicit start, for one keyframe or to compare
        implementations step by step.

        The start: ``state`` (the keyframes before, the last one the interpolation's fixed
        end; ``state.last_x0`` under ``chained`` and ``state.group_input`` under
        ``chunk-reset`` the previous latent; the fitter's init latent for keyframe 0),
        ``initial`` the starting float factors (None: ``initial_factors``) and the level's
        seed. ``on_step`` receives every optimiser step (sequential presets only; the batched
        engine steps on the device and reports no steps).
        """
        started = time.perf_counter()
        if on_step is not None and self.preset.algorithm != "sequential":
            raise ValueError(
                f"preset {self.preset.name}: the step trace follows the sequential loop only"
            )
        u0, v0 = self.initial_factors(span, state) if initial is None else initial
        rank = self.config.rank
        if np.shape(u0) != (CONTEXT_TOKENS, rank) or np.shape(v0) != (rank, CONTEXT_DIM):
            raise ValueError(
                f"initial factors of keyframe {span.index} are {np.shape(u0)} and "
                f"{np.shape(v0)}, the level needs {(CONTEXT_TOKENS, rank)} and {(rank, CONTEXT_DIM)}"
            )
        u = torch.from_numpy(np.ascontiguousarray(u0, np.float32)).to(self.device)
        v = torch.from_numpy(np.ascontiguousarray(v0, np.float32)).to(self.device)
        if self.preset.algorithm == "sequential":
            u, v, ranges, best_loss, iterations = fit_sequential(
                self.problems, span, self.problem(span, state), u, v,
                self.sequential_schedule(span), on_step, self.preset.running_range,
            )  # fmt: skip
        else:
            u, v, best_loss, iterations = self._fit_batched(span, state, u, v)
            ranges = (None, None)
        factors = (u.cpu().numpy(), v.cpu().numpy())
        keyframe = Keyframe(
            span.end, quantize_tensor(factors[0], ranges[0]), quantize_tensor(factors[1], ranges[1])
        )
        decoded_start, decoded, mse, group_input, last_x0 = self.regenerate(span, keyframe, state)
        stats = KeyframeStats(
            frame=span.end,
            iterations=iterations,
            seconds=time.perf_counter() - started,
            loss=best_loss if iterations else mse,  # no step ran (encoder preset): the MSE
            psnr=psnr_from_mse(mse),
        )
        return SpanResult(keyframe, factors, stats, decoded_start, decoded, group_input, last_x0)

    # -- the batched engine ----------------------------------------------------------------

    def _fit_batched(
        self, span: KeyframeSpan, state: FitState, u: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float, int]:
        """Phases (coarse, latent, pixel), each from the previous phase's best factors."""
        problem = self.problem(span, state)
        lr = self.starts.learning_rate(span)
        iterations, best_loss = 0, math.inf
        u, v = u[None], v[None]
        for phase, phase_budget in self.starts.phase_budgets(span):
            if phase_budget <= 0:
                continue
            schedule = self.schedule(span, phase_budget, lr, final=phase == "pixel")
            result = self.optimiser.run(
                problem.coarse() if phase == "coarse" else problem, u, v, schedule,
                latent=phase == "latent",
            )  # fmt: skip
            u, v, best_loss = result.u, result.v, result.loss[0]
            iterations += result.steps
        return u[0], v[0], best_loss, iterations

    def schedule(self, span: KeyframeSpan, budget: int, lr: float, final: bool) -> PhaseSchedule:
        """The rules of one batched phase of one keyframe (``KeyframeStarts.schedule``)."""
        return self.starts.schedule(span, budget, lr, final)

    def sequential_schedule(self, span: KeyframeSpan) -> SequentialSchedule:
        """One keyframe's schedule in the release's loop (``KeyframeStarts.sequential_schedule``)."""
        return self.starts.sequential_schedule(span)

    # -- after the fit ----------------------------------------------------------------------

    def regenerate(
        self, span: KeyframeSpan, keyframe: Keyframe, state: FitState
    ) -> tuple[int, np.ndarray, float, np.ndarray, np.ndarray]:
        """The span regenerated as a decoder will (``DecoderReplay.regenerate``)."""
        return self.replay.regenerate(span, keyframe, state)

    def _progress_facts(self, span: KeyframeSpan, stats: KeyframeStats) -> dict[str, str]:
        """What the bar shows after a keyframe: frames fitted so far, then its quality, then the
        optimiser's speed when it ran at all (a preset that keeps the prompt encoder's factors
        runs none: a constant 0 it/s read as a hang)."""
        facts = {
            "frames": f"{span.end + 1}/{len(self.frames)}",
            "psnr": f"{stats.psnr:.2f} dB",
            "loss": f"{stats.loss:.4f}",
        }
        if stats.iterations > 0:
            facts["iters"] = f"{stats.iterations / max(stats.seconds, 1e-9):.1f}/s"
        return facts

    def fit(
        self,
        state: FitState | None = None,
        on_keyframe: Callable[[FitState, SpanResult], None] | None = None,
        progress: Any = None,
        initial: InitialFactors | None = None,
        on_step: StepHook | None = None,
    ) -> FitState:
        """Fit every keyframe not yet in ``state``; ``on_keyframe`` runs after each (checkpointing),
        ``initial`` may give any keyframe's starting factors, ``on_step`` sees every step
        (``fit_span``)."""
        state = state or FitState()
        if progress is not None and len(state.keyframes) < len(self.spans):
            done = self.spans[len(state.keyframes) - 1].end + 1 if state.keyframes else 0
            progress.set_postfix(frames=f"{done}/{len(self.frames)}")
        for span in self.spans[len(state.keyframes) :]:
            start = initial(span, state) if initial is not None else None
            result = self.fit_span(span, state, start, on_step)
            state.keyframes.append(result.keyframe)
            state.stats.append(result.stats)
            state.factors = result.factors
            state.group_input = result.group_input
            state.last_x0 = result.last_x0
            if on_keyframe is not None:
                on_keyframe(state, result)
            if progress is not None:
                progress.set_postfix(self._progress_facts(span, result.stats), refresh=False)
                progress.update(1)
        return state
