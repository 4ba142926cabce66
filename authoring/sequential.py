"""The original release's optimisation loop (``--preset paper``), written from its description.

One *iteration* over an interval of n frames:

1. for each frame j = 0 .. n-1 in order: update the running quantiser ranges with the current
   (U, V), score frame j alone on the fake-quantised factors, backpropagate, one Adam step;
2. the frame whose loss was highest in that sweep gets ``extra_steps`` (two) more such steps;
3. the iteration's loss is the mean of the n sweep losses (each taken at a different state of
   U, V); if it is below the best so far, the factors as they stand now and the quantiser
   ranges become the best; otherwise the learning rate halves and Adam is created anew
   (moments and step count reset).

The fake quantiser keeps a *running* min/max over the whole fit of a keyframe (the range
only grows), and the stored keyframe is quantised with the range recorded with the best.
Nothing here knows about generators: ``frame_loss(j, qu, qv)`` scores one frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from prompts.quant import fake_quantize

FrameLoss = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
EXTRA_WORST_STEPS = 2  # the release's extra steps on the interval's worst frame


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


@dataclass
class StepRecord:
    """One optimiser step, for tests and diagnostics."""

    iteration: int
    frame: int
    worst_step: bool  # one of the extra steps on the worst frame
    lr: float
    loss: float
    adam_step: int  # Adam's own step count after this step (1 right after a reset)
    u_range: tuple[float, float]
    v_range: tuple[float, float]
    u: torch.Tensor  # the factors after the step
    v: torch.Tensor


@dataclass
class SequentialResult:
    u: torch.Tensor  # best factors (float)
    v: torch.Tensor
    u_range: tuple[float, float]  # running ranges recorded with the best
    v_range: tuple[float, float]
    loss: float  # best iteration loss
    iterations: int
    lr: float  # learning rate at the end
    trace: list[StepRecord] = field(default_factory=list)


class SequentialFit:
    """Runs the release's loop on one keyframe's factors."""

    def __init__(
        self,
        frame_loss: FrameLoss,
        frames: int,
        lr: float,
        extra_steps: int = EXTRA_WORST_STEPS,
        record: bool = False,
    ) -> None:
        self.frame_loss = frame_loss
        self.frames = frames
        self.lr = lr
        self.extra_steps = extra_steps
        self.record = record

    def run(self, u0: torch.Tensor, v0: torch.Tensor, iterations: int) -> SequentialResult:
        u = u0.detach().clone().requires_grad_(True)
        v = v0.detach().clone().requires_grad_(True)
        lr = self.lr
        optimizer = torch.optim.Adam([u, v], lr=lr)
        u_range, v_range = RunningRange(), RunningRange()
        best = math.inf
        best_u, best_v = u.detach().clone(), v.detach().clone()
        best_ranges: tuple[tuple[float, float], tuple[float, float]] | None = None
        trace: list[StepRecord] = []

        def step(iteration: int, frame: int, worst_step: bool) -> float:
            loss = self.frame_loss(frame, u_range.fake_quantize(u), v_range.fake_quantize(v))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if self.record:
                state = optimizer.state[u]
                trace.append(StepRecord(
                    iteration, frame, worst_step, lr, value, int(state["step"]),
                    u_range.value(), v_range.value(), u.detach().clone(), v.detach().clone(),
                ))  # fmt: skip
            return value

        done = 0
        for iteration in range(iterations):
            losses = [step(iteration, j, False) for j in range(self.frames)]
            worst = max(range(self.frames), key=losses.__getitem__)
            for _ in range(self.extra_steps):
                step(iteration, worst, True)
            done = iteration + 1
            mean = sum(losses) / self.frames
            if mean < best:
                best = mean
                best_u, best_v = u.detach().clone(), v.detach().clone()
                best_ranges = (u_range.value(), v_range.value())
            else:
                lr /= 2
                optimizer = torch.optim.Adam([u, v], lr=lr)
        if best_ranges is None:  # no iteration ran (or none was finite): the start, its own range
            u_range.update(best_u)
            v_range.update(best_v)
            best_ranges = (u_range.value(), v_range.value())
        return SequentialResult(best_u, best_v, *best_ranges, best, done, lr, trace)
