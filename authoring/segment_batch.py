"""Several closed segments fitted in lockstep: one stacked optimiser step for all of them.

A GPU step of the fitting loop costs about the same whether it scores one frame or ten (the
host is the bottleneck, docs/inversion.md), so segments (of one or many titles, levels with the
same rank and interval, live cells) are fitted together: keyframe index by keyframe index, the
problems of every segment that are waiting for the optimiser and have the same shape (frames,
rank, latent size, phase and schedule) run as one stack (``authoring.batched.stack_problems``),
each with its own factors, learning rate, best and stop. A segment whose problem differs (a short
tail interval, another rank) runs in its own smaller stack in the same round.

Everything else is ``authoring.segments.fit_segment``'s, unchanged and per segment: warm starts
(nano's prompt-encoder factors included), latent targets, a checkpoint after every keyframe and
resume, the regeneration, the quality of each chunk, the ``SegmentResult``. Each segment's fit
runs in a thread of its own, but only one thread runs at a time (a baton): a fit runs until its
next optimiser phase, parks its problem, and the driver runs every parked problem, stacked, once
all fits are parked or done. So the order of work is fixed and nothing runs concurrently.

Equality: a stack of one is ``fit_segment`` bit for bit, and so is a larger stack where the
networks and the loss compute each frame alone (the tests' ``OneByOne`` tiny generator without
the MS-SSIM term, rank 2; nano on its encoder latents with prompt-encoder starts, 3 segments). Otherwise batch size changes their float rounding, which Adam and
the plateau rule carry on from keyframe to keyframe: measured on CPU with the tiny generator
(``tests/authoring/test_segment_batch.py``: 4 segments of two titles, one a short tail, r2n5,
``demo`` 12/8 steps) a stored 8-bit factor differed by up to 31 quantiser steps, a chunk's PSNR
by at most 0.06 dB, and the two fits' regenerated frames were at least 33.4 dB PSNR apart; a
catalogue of two titles and two levels in batches of three, against batches of one, moved a
chunk's PSNR by at most 0.59 dB (0.34 on another run). Two differences are by design: a stacked problem's
``iterations`` counts the steps its stack ran (a problem that stopped early rides along frozen,
as the GPU did), and phases that score a random subset of frames (``frames_per_step``) are
never stacked (their draws depend on the stack's size).

The sequential ``paper`` preset is refused as ``fit_segment`` refuses it (it cannot be cut into
closed segments); any other sequential schedule has no stacked step and so runs one segment
after another in the same call.

How many problems share a step: ``max_stack``, or on a GPU the memory rule
``segments_per_step_for`` (free GPU memory less ``MEMORY_MARGIN``, divided by one problem's
memory: one frame's peak training memory, measured once per worker and size by ``frame_bytes``
as the difference of a forward and backward pass of two frames and of one, times the frames of
the longest interval; ``authoring.tasks.max_stack_for``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from authoring.segments import Segment, SegmentResult, fit_segment

AUTO = "auto"  # segments per step chosen by the worker's free GPU memory
MAX_SEGMENTS_PER_STEP = 8  # a step is host-bound up to about 3 segments of 10 frames at 512x512
MEMORY_MARGIN = 0.25  # share of free GPU memory left alone (allocator slack, regeneration, VAE)

T = TypeVar("T")


def segments_per_step_for(
    free_bytes: int, frame_bytes: int, frames_per_problem: int, cap: int = MAX_SEGMENTS_PER_STEP
) -> int:
    """Problems per stacked step that fit in ``free_bytes`` of GPU memory: what stays after
    ``MEMORY_MARGIN``, divided by one problem's training memory (``frame_bytes`` per frame,
    ``frames_per_problem`` frames, e.g. the level's interval), between 1 and ``cap``."""
    if frame_bytes <= 0 or frames_per_problem <= 0:
        raise ValueError(
            f"frame_bytes and frames_per_problem must be positive, got {frame_bytes} and "
            f"{frames_per_problem}"
        )
    usable = int(free_bytes * (1.0 - MEMORY_MARGIN))
    return max(1, min(cap, usable // (frame_bytes * frames_per_problem)))


def frame_bytes(generator: Any, width: int, height: int) -> int:
    """Peak training memory of one more frame on the generator's CUDA device: a forward and
    backward pass (into the contexts, as a fitting step) of two frames minus one of one frame."""
    import torch

    from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

    device = generator.device
    peaks = []
    for count in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        latents = torch.randn(count, *generator.latent_geometry.shape(width, height)[1:],
                              device=device)  # fmt: skip
        contexts = torch.zeros(count, CONTEXT_TOKENS, CONTEXT_DIM, device=device)
        contexts.requires_grad_(True)
        _, images = generator.forward(latents, contexts)
        images.float().square().mean().backward()
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        del latents, contexts, images
    return max(1, peaks[1] - peaks[0])


def resolve_segments_per_step(value: int | str | None, on_gpu: bool) -> int | str:
    """A ``--segments-per-step`` value with its default resolved: ``AUTO`` on CUDA, else 1."""
    if value is not None:
        return value
    return AUTO if on_gpu else 1


def batch_size_for(segments_per_step: int | str) -> int:
    """Segments per batch task: the number asked, or for ``auto`` the most one step stacks (the
    worker then stacks as many as its free GPU memory holds, ``authoring.tasks.max_stack_for``)."""
    return MAX_SEGMENTS_PER_STEP if segments_per_step == AUTO else int(segments_per_step)


def stack_batches(items: Sequence[T], key: Callable[[T], Hashable], size: int) -> list[list[T]]:
    """``items`` in batches of at most ``size`` with equal ``key`` (problems that can stack), in
    the order of each key's first item; the items keep their order."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def fit_segments(
    frames_list: Sequence[np.ndarray],
    segments: Sequence[Segment],
    generator: Any,
    options: Any,
    init_latents: Sequence[np.ndarray],
    *,
    checkpoint_dirs: Sequence[Path | None] | None = None,
    measure_quality: bool = True,
    measure_vmaf: bool = False,
    max_stack: int | None = None,
) -> list[SegmentResult]:
    """Fit ``segments`` in lockstep (module docstring); a ``SegmentResult`` per segment, in order.

    Per segment, as ``fit_segment`` takes them: the frames its fit sees (``frames_list``), its
    title's initial latent (``init_latents``) and its checkpoint directory (``checkpoint_dirs``,
    None: no checkpoints). ``max_stack`` bounds the problems of one step (None: all that match).
    The first segment that fails raises its error once every other segment is done (their
    checkpoints are written; a retry resumes them).
    """
    count = len(segments)
    dirs = list(checkpoint_dirs) if checkpoint_dirs is not None else [None] * count
    if not len(frames_list) == len(init_latents) == len(dirs) == count:
        raise ValueError(
            f"{count} segments need as many frame arrays, initial latents and checkpoint "
            f"directories, got {len(frames_list)}, {len(init_latents)} and {len(dirs)}"
        )
    if max_stack is not None and max_stack < 1:
        raise ValueError(f"max_stack must be at least 1, got {max_stack}")

    def job(i: int) -> Callable[[Callable[[Any], Any]], SegmentResult]:
        return lambda wrap: fit_segment(
            frames_list[i], segments[i], generator, options, init_latents[i],
            checkpoint_dir=dirs[i], measure_quality=measure_quality, measure_vmaf=measure_vmaf,
            wrap_optimiser=wrap,
        )  # fmt: skip

    outcomes = Lockstep(max_stack).run([job(i) for i in range(count)])
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


@dataclass
class _Request:
    """A phase a fit waits on: ``BatchedOptimiser.run``'s arguments."""

    problem: Any  # StackedProblem of one
    u0: Any
    v0: Any
    schedule: Any  # PhaseSchedule
    latent: bool


class _Fit:
    """One fit's thread, parked on its optimiser requests."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.go = threading.Semaphore(0)
        self.request: _Request | None = None
        self.reply: Any = None  # PhaseResult, or the exception the stacked run raised
        self.outcome: Any = None
        self.done = False


class _ParkingOptimiser:
    """Stands in for a fit's ``BatchedOptimiser``: ``run`` parks the phase with the driver."""

    def __init__(self, lockstep: Lockstep, fit: _Fit) -> None:
        self._lockstep = lockstep
        self._fit = fit

    def run(self, problem: Any, u0: Any, v0: Any, schedule: Any, latent: bool) -> Any:
        fit = self._fit
        fit.request = _Request(problem, u0, v0, schedule, latent)
        self._lockstep.parked.release()
        fit.go.acquire()
        reply, fit.reply, fit.request = fit.reply, None, None
        if isinstance(reply, BaseException):
            raise reply
        return reply


class Lockstep:
    """Runs jobs (each given a ``wrap_optimiser`` for ``fit_level``) one at a time, and their
    parked optimiser phases stacked; ``stacks`` records the size of every stacked run."""

    def __init__(self, max_stack: int | None = None) -> None:
        self.max_stack = max_stack
        self.parked = threading.Semaphore(0)
        self.optimiser: Any = None  # the first fit's optimiser runs every stack
        self.stacks: list[int] = []

    def run(self, jobs: Sequence[Callable[[Callable[[Any], Any]], T]]) -> list[T | BaseException]:
        """Each job's value, or the exception it raised, in order."""
        fits = [_Fit(i) for i in range(len(jobs))]
        threads = [
            threading.Thread(
                target=self._body, args=(fit, job), name=f"segment-fit-{fit.index}", daemon=True
            )  # fmt: skip
            for fit, job in zip(fits, jobs, strict=True)
        ]
        for thread in threads:
            thread.start()
        waiting = fits
        while waiting:
            for fit in waiting:  # one at a time, up to its next phase (or its end)
                fit.go.release()
                self.parked.acquire()
            waiting = [fit for fit in fits if not fit.done]
            for group in self._groups(waiting):
                self._run_stack(group)
        for thread in threads:
            thread.join()
        return [fit.outcome for fit in fits]

    def _body(self, fit: _Fit, job: Callable[[Callable[[Any], Any]], Any]) -> None:
        fit.go.acquire()
        try:
            fit.outcome = job(lambda optimiser: self._wrap(fit, optimiser))
        except BaseException as error:  # noqa: BLE001 - handed back per job
            fit.outcome = error
        finally:
            fit.done = True
            self.parked.release()

    def _wrap(self, fit: _Fit, optimiser: Any) -> _ParkingOptimiser:
        if self.optimiser is None:
            self.optimiser = optimiser
        return _ParkingOptimiser(self, fit)

    def _groups(self, waiting: list[_Fit]) -> list[list[_Fit]]:
        """Parked fits whose problems stack, in order, each group at most ``max_stack`` long."""
        by_key: dict[tuple, list[_Fit]] = {}
        for fit in waiting:
            assert fit.request is not None
            by_key.setdefault(_stack_key(fit.request, fit.index), []).append(fit)
        size = self.max_stack or len(waiting) or 1
        return [
            group[i : i + size] for group in by_key.values() for i in range(0, len(group), size)
        ]

    def _run_stack(self, group: list[_Fit]) -> None:
        import torch

        from authoring.batched import PhaseResult, stack_problems

        requests = [fit.request for fit in group]
        assert all(r is not None for r in requests)
        first = requests[0]
        assert first is not None
        try:
            if len(group) == 1:
                replies: list[Any] = [
                    self.optimiser.run(
                        first.problem, first.u0, first.v0, first.schedule, first.latent
                    )  # fmt: skip
                ]
            else:
                result = self.optimiser.run(
                    stack_problems([r.problem for r in requests]),  # type: ignore[union-attr]
                    torch.cat([r.u0 for r in requests]),  # type: ignore[union-attr]
                    torch.cat([r.v0 for r in requests]),  # type: ignore[union-attr]
                    replace(first.schedule, lr=[lr for r in requests for lr in r.schedule.lr]),  # type: ignore[union-attr]
                    first.latent,
                )  # fmt: skip
                replies = [
                    PhaseResult(
                        result.u[i : i + 1], result.v[i : i + 1], [result.loss[i]], result.steps
                    )  # fmt: skip
                    for i in range(len(group))
                ]
        except Exception as error:  # noqa: BLE001 - raised in each fit of the stack
            replies = [error] * len(group)
        self.stacks.append(len(group))
        for fit, reply in zip(group, replies, strict=True):
            fit.reply = reply


def _stack_key(request: _Request, index: int) -> tuple:
    """Problems with equal keys stack: same tensor shapes, phase, noise mix and schedule (the
    learning rate included: a cosine's floor is relative to it). A phase on random frame subsets
    stacks with nothing (its draws depend on the stack's size)."""
    problem, schedule = request.problem, request.schedule
    shapes = tuple(
        None if value is None else tuple(value.shape)
        for value in (problem.targets, problem.latent_targets, problem.prev_u, problem.group_in,
                      problem.noise, request.u0, request.v0)
    )  # fmt: skip
    plan = tuple(
        tuple(value) if isinstance(value, list) else value
        for value in (getattr(schedule, f.name) for f in fields(schedule))
    )
    subsets = 0 < schedule.frames_per_step < problem.frames
    return (request.latent, shapes, problem.prev_weight, plan, index if subsets else None)
