"""The original release's optimisation loop (``--preset paper``), step for step.

Written from a reading of the release's ``inversion.py`` (JiangkaiWu/Promptus); what it does,
for one keyframe whose interval holds the frames ``f_1 .. f_n`` (keyframe 0: frame 0 alone):

1. *Sweep.* An iteration steps the frames in order, one Adam step each: update the running
   quantiser ranges with the current (U, V), score the frame alone on the fake-quantised
   factors, backpropagate, ``Adam.step``.
2. *Worst frame* (``extra_steps`` = 2; none for keyframe 0, as in the release). The frame
   whose first loss of iteration i was highest is stepped ``1 + extra_steps`` times in a row
   *at its place in the sweep of iteration i + 1*: with n = 5 and frame 5 worst the next sweep
   is ``1, 2, 3, 4, 5, 5, 5``. Iteration 0 has no extra steps; ties go to the earlier frame.
3. *Best.* The iteration's loss is the mean over the frames of each frame's first loss in the
   sweep (each taken at another state of U, V). Below the best so far (strictly), it becomes
   the best and the factors *that the sweep's last step scored* (before that step's update),
   with the ranges that quantised them, are what the keyframe stores.
4. *Learning rate.* Every ``patience`` iterations (the release: 300 for keyframe 0, 20 after)
   the best is compared with the best at the previous check: no new best in that window
   halves the rate, floored at ``min_lr`` (0.001), and re-creates Adam (moments and step count
   reset) -- at the floor too, where the rate stays. A new best only moves the reference.
   ``improvement`` is the relative margin that counts as new (the release's: 0, strict).

The fake quantiser keeps a *running* min/max over the whole fit of a keyframe (the range only
grows). Nothing here knows about generators: ``frame_loss(frame, qu, qv)`` scores one frame.
``on_step`` sees every step (``StepRecord``), so two implementations can be compared step by
step from the same start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from prompts.quant import fake_quantize

FrameLoss = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
EXTRA_WORST_STEPS = 2  # the release's extra steps on the previous iteration's worst frame
LR_DECAY = 0.5  # the release halves the rate after a window without a new best


class RunningRange:
    """Min and max of a tensor over every update so far, widened to include 0 as the
    quantiser needs (on the tensor's device, no host sync)."""

    def __init__(self) -> None:
        self.low: torch.Tensor | None = None
        self.high: torch.Tensor | None = None

    def update(self, values: torch.Tensor) -> None:
        with torch.no_grad():
            low, high = values.min().clamp(max=0.0), values.max().clamp(min=0.0)
            self.low = low if self.low is None else torch.minimum(self.low, low)
            self.high = high if self.high is None else torch.maximum(self.high, high)

    def fake_quantize(self, values: torch.Tensor) -> torch.Tensor:
        """Straight-through fake quantisation on the running range (updated first)."""
        self.update(values)
        return fake_quantize(values, self.low, self.high)

    def value(self) -> tuple[float, float]:
        assert self.low is not None and self.high is not None, "range never updated"
        return float(self.low), float(self.high)


@dataclass(frozen=True)
class SequentialSchedule:
    """How long one keyframe's loop runs and how its learning rate moves."""

    iterations: int
    lr: float  # starting learning rate
    patience: int  # iterations per window of the learning-rate check
    min_lr: float  # floor of the halving
    extra_steps: int = EXTRA_WORST_STEPS  # extra steps on the previous worst frame (0: none)
    improvement: float = 0.0  # relative drop of the best that counts as new at a check

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1 iteration, got {self.patience}")


def sweep_order(frames: Sequence[int], worst: int | None, extra_steps: int) -> list[int]:
    """The frames one iteration steps, in order: each once, ``worst`` (the previous
    iteration's, None in iteration 0) ``1 + extra_steps`` times in a row at its place."""
    return [f for f in frames for _ in range(1 + (extra_steps if f == worst else 0))]


@dataclass
class StepRecord:
    """One optimiser step, as the trace hook sees it."""

    keyframe: int
    iteration: int
    frame: int  # the frame scored
    worst_step: bool  # a repeat step on the previous iteration's worst frame
    lr: float
    loss: float  # of the scored frame, before the update
    adam_step: int  # Adam's own step count after this step (1 right after a re-creation)
    u_range: tuple[float, float]  # running quantiser ranges that scored this step
    v_range: tuple[float, float]
    u: torch.Tensor  # the float factors after the step
    v: torch.Tensor


StepHook = Callable[[StepRecord], None]


@dataclass
class SequentialResult:
    u: torch.Tensor  # float factors that the best iteration's last step scored
    v: torch.Tensor
    u_range: tuple[float, float]  # the running ranges that quantised them
    v_range: tuple[float, float]
    loss: float  # best iteration loss
    iterations: int
    lr: float  # learning rate at the end


class SequentialFit:
    """Runs the release's loop on one keyframe's factors over the frames ``frames`` (their
    numbers in the video, in order; ``frame_loss`` is called with one of them)."""

    def __init__(
        self,
        frame_loss: FrameLoss,
        frames: Sequence[int],
        schedule: SequentialSchedule,
        on_step: StepHook | None = None,
        keyframe: int = 0,
    ) -> None:
        self.frame_loss = frame_loss
        self.frames = list(frames)
        self.schedule = schedule
        self.on_step = on_step
        self.keyframe = keyframe  # only labels the trace

    def run(self, u0: torch.Tensor, v0: torch.Tensor) -> SequentialResult:
        schedule = self.schedule
        u = u0.detach().clone().requires_grad_(True)
        v = v0.detach().clone().requires_grad_(True)
        lr = schedule.lr
        optimizer = torch.optim.Adam([u, v], lr=lr)
        u_range, v_range = RunningRange(), RunningRange()
        best = checked = math.inf
        best_u, best_v = u.detach().clone(), v.detach().clone()
        best_ranges: tuple[tuple[float, float], tuple[float, float]] | None = None

        def step(iteration: int, frame: int, worst_step: bool) -> float:
            loss = self.frame_loss(frame, u_range.fake_quantize(u), v_range.fake_quantize(v))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if self.on_step is not None:
                self.on_step(StepRecord(
                    self.keyframe, iteration, frame, worst_step, lr, value,
                    int(optimizer.state[u]["step"]), u_range.value(), v_range.value(),
                    u.detach().clone(), v.detach().clone(),
                ))  # fmt: skip
            return value

        worst: int | None = None
        done = 0
        for iteration in range(schedule.iterations):
            order = sweep_order(self.frames, worst, schedule.extra_steps)
            first_loss: dict[int, float] = {}  # in sweep order
            for position, frame in enumerate(order):
                if position == len(order) - 1:  # what the stored keyframe would be
                    scored = u.detach().clone(), v.detach().clone()
                loss = step(iteration, frame, frame in first_loss)
                first_loss.setdefault(frame, loss)
            done = iteration + 1
            mean = sum(first_loss.values()) / len(first_loss)
            if mean < best:
                best = mean
                best_u, best_v = scored
                best_ranges = (u_range.value(), v_range.value())
            if schedule.extra_steps:
                worst = max(first_loss, key=first_loss.__getitem__)  # first of equal maxima
            if done % schedule.patience == 0:
                if not best < checked * (1 - schedule.improvement):
                    lr = max(lr * LR_DECAY, schedule.min_lr)
                    optimizer = torch.optim.Adam([u, v], lr=lr)
                else:
                    checked = best
        if best_ranges is None:  # no iteration ran (or none was finite): the start, its own range
            u_range.update(best_u)
            v_range.update(best_v)
            best_ranges = (u_range.value(), v_range.value())
        return SequentialResult(best_u, best_v, *best_ranges, best, done, lr)
