"""The release's loop (``authoring.sequential``, ``--preset paper``) on one keyframe of a level.

``SequentialFit`` knows nothing about generators: it steps on ``frame_loss(frame, qu, qv)``.
Here that loss is read from the keyframe's ``StackedProblem``: each frame alone, on the
context its weight interpolates, through the UNet input the level's previous-latent rule gives
it. The keyframe's own frame, where that input is not fixed (``chunk-reset`` inside a chunk),
sees the x0 of the frame just before it as the latest step on that frame left it (the first
time, from the starting factors), the release's stale x0.
"""

from __future__ import annotations

import torch

from authoring.batched import StackedProblem, stacked_contexts
from authoring.plan import KeyframeSpan
from authoring.problems import KeyframeProblems
from authoring.sequential import FrameLoss, SequentialFit, SequentialSchedule, StepHook

Ranges = tuple[tuple[float, float] | None, tuple[float, float] | None]  # U's and V's


def frame_loss_of(
    problems: KeyframeProblems, span: KeyframeSpan, problem: StackedProblem
) -> FrameLoss:
    """The loss ``SequentialFit`` steps on for one keyframe (``problem``, a stack of one)."""
    n = len(span.frames)
    stale: dict[str, torch.Tensor] = {}

    def frame_loss(frame: int, qu: torch.Tensor, qv: torch.Tensor) -> torch.Tensor:
        j = frame - span.frames[0]
        s = problem.weights[:, j : j + 1]
        context = stacked_contexts(qu[None], qv[None], problem, s)[0]
        if j < n - 1 or bool(problem.last_fixed[0]):
            latent = problem.group_in if j < n - 1 else problem.last_in
        else:  # the keyframe's own frame on the x0 of the frame just before it
            if "x0" not in stale:
                stale["x0"] = problems.x0(problem.group_in, problem_context(n - 2, qu, qv))
            latent = problems.unet_input(stale["x0"])
        x0, image = problems.forward(latent, context)
        if j == n - 2:
            stale["x0"] = x0.detach()
        assert problem.targets is not None
        return problems.loss(image, problem.targets[0, j : j + 1], context)[0]

    def problem_context(j: int, qu: torch.Tensor, qv: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            s = problem.weights[:, j : j + 1]
            return stacked_contexts(qu[None], qv[None], problem, s)[0].detach()

    return frame_loss


def fit_sequential(
    problems: KeyframeProblems,
    span: KeyframeSpan,
    problem: StackedProblem,
    u: torch.Tensor,
    v: torch.Tensor,
    schedule: SequentialSchedule,
    on_step: StepHook | None,
    running_range: bool,
) -> tuple[torch.Tensor, torch.Tensor, Ranges, float, int]:
    """The release's loop over the span's frames from (U, V): (U, V the keyframe stores, the
    quantiser's ranges for them when ``running_range`` (else None: their own), best loss,
    iterations)."""
    frame_loss = frame_loss_of(problems, span, problem)
    fit = SequentialFit(frame_loss, span.frames, schedule, on_step, keyframe=span.index)
    result = fit.run(u, v)
    ranges: Ranges = (result.u_range, result.v_range) if running_range else (None, None)
    return result.u, result.v, ranges, result.loss, result.iterations
