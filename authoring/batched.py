"""The batched optimiser: one keyframe's fit (or several independent ones) as identical device steps.

One *step* generates a batch of the interval's frames from the fake-quantised factors,
scores them, backpropagates into (U, V) and moves them with Adam. Everything a step needs
and changes lives in tensors on the device (factors, Adam moments, best factors, per-frame
loss estimates, the worst frame, the stale x0 of the frame before the keyframe's own, the
learning rate), so a step never waits for the host: on CUDA it can be captured once as a
CUDA graph (forward, backward and Adam together) and replayed, and it can be compiled with
``torch.compile``. The host looks at the device only every ``patience`` steps, for the
plateau rule and the quality target.

Problems are *stacked*: S keyframe problems of n frames each (e.g. the same keyframe of
several segments) share one batch of S x k frames; their factors, learning rates and
bookkeeping stay separate, so stacking changes no result, only how full the GPU is.

Levers (``StepOptions`` and the preset): ``frames_per_step`` k < n scores a random subset of
the interval per step (the worst frame always in; the "best" is then judged on the latest
loss of every frame), a latent phase (x0 against encoder latents, no decoder), a coarse
phase (everything at half resolution), CUDA graphs, ``torch.compile`` and autocast.
"""

from __future__ import annotations

import contextlib
import gc
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from prompts.keyframe import compose_context
from prompts.quant import fake_quantize

GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture (allocator, cuDNN choices)
SUBSET_DRAWS = 256  # pre-drawn random frame orders of a subset run, used in turn
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the release uses
ADAM_EPS = 1e-8
COARSE_FACTOR = 2  # the coarse phase works at half the resolution

Forward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
LatentForward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepOptions:
    """How steps run (none of this changes what a step computes, beyond rounding)."""

    cuda_graph: bool = True  # on CUDA, capture one step as a CUDA graph and replay it
    compile_mode: str | None = None  # torch.compile mode of the forward + loss (e.g. "default")
    autocast: torch.dtype | None = None  # run the networks under autocast (fp32 weights)


@dataclass
class StackedProblem:
    """Fixed tensors of S keyframe problems of n frames each, stacked on the first axis.

    Frames ``0 .. n-2`` of a problem share the UNet input ``group_in``; its last frame (the
    keyframe's own) gets ``last_in`` where ``last_fixed``, else ``w * x0 + (1 - w) * noise``
    with x0 that of frame ``n - 2``, taken from the latest step that generated it (detached).
    """

    targets: torch.Tensor | None  # [S, n, 3, H, W] in [-1, 1] (pixel phase)
    latent_targets: torch.Tensor | None  # [S, n, 4, h, w] (latent phase)
    weights: torch.Tensor  # [S, n] weight s/N of this keyframe in each frame
    prev_u: torch.Tensor | None  # [S, 77, r] previous keyframe (dequantised); None: keyframe 0
    prev_v: torch.Tensor | None  # [S, r, 1024]
    group_in: torch.Tensor  # [S, 4, h, w]
    last_in: torch.Tensor  # [S, 4, h, w]
    last_fixed: torch.Tensor  # [S] bool
    noise: torch.Tensor  # [1, 4, h, w] the stream noise
    prev_weight: float  # w of the previous-latent mix
    rate_weight: torch.Tensor  # [S] weight of mean|U - U_prev| + mean|V - V_prev| (0: none)

    @property
    def stack(self) -> int:
        return self.weights.shape[0]

    @property
    def frames(self) -> int:
        return self.weights.shape[1]

    def coarse(self) -> StackedProblem:
        """The same problem at half resolution: targets and latents average-pooled, the noise
        share of each latent input topped up so that the input keeps unit noise variance."""

        def pooled(x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(x.flatten(0, -4), COARSE_FACTOR).view(
                *x.shape[:-2], -1, x.shape[-1] // COARSE_FACTOR
            )

        def pool(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else pooled(x)

        noise = pooled(self.noise)
        keep = 1.0 - self.prev_weight
        # pool(w p + (1-w) n) has noise std (1-w)/2; adding (1-w) pool(n) makes it (1-w).
        topped = lambda x: pooled(x) + keep * noise  # noqa: E731
        return replace(
            self, targets=pool(self.targets), latent_targets=pool(self.latent_targets),
            group_in=topped(self.group_in), last_in=topped(self.last_in),
            noise=COARSE_FACTOR * noise,
        )  # fmt: skip


def stacked_contexts(
    qu: torch.Tensor, qv: torch.Tensor, problem: StackedProblem, s: torch.Tensor
) -> torch.Tensor:
    """Contexts ``[S, k, 77, 1024]`` of the frames with keyframe weights ``s`` ``[S, k]``."""
    if problem.prev_u is None or problem.prev_v is None:
        return compose_context(qu, qv).unsqueeze(1).expand(-1, s.shape[1], -1, -1)
    w = s[..., None, None]
    one = 1.0 - w
    return compose_context(one * problem.prev_u[:, None] + w * qu[:, None],
                           one * problem.prev_v[:, None] + w * qv[:, None])  # fmt: skip


def choose_frames(scores: torch.Tensor, worst: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` frames per problem ``[S, k]``: the worst (``worst`` ``[S]``, -1: none yet) and the
    highest of the random ``scores`` ``[S, n]`` in [0, 1)."""
    scores = scores.scatter(1, worst.clamp_min(0)[:, None], 2.0)
    return scores.topk(k, dim=1).indices


class DeviceAdam:
    """Adam on stacked factors with one learning rate per problem, entirely on the device.

    The arithmetic is torch.optim.Adam's (``lerp`` first moment, bias-corrected second moment
    under the square root, then ``eps``), with the step count and learning rate as tensors so
    that a captured CUDA graph can replay it.
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        # Bias corrections in float64, rounded once, as torch.optim.Adam computes them in Python.
        self.steps = torch.zeros(params[0].shape[0], device=params[0].device, dtype=torch.float64)

    def reset(self) -> None:
        for t in (*self.exp_avg, *self.exp_avg_sq, self.steps):
            t.zero_()

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: torch.Tensor) -> None:
        """One Adam step; ``lr`` ``[S]`` (0 freezes a problem)."""
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        step_size = (lr / (1 - beta1**self.steps)).float().view(-1, 1, 1)
        root_correction = (1 - beta2**self.steps).sqrt().float().view(-1, 1, 1)
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq, strict=True):
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.sub_(step_size * m / ((v.sqrt() / root_correction).add_(ADAM_EPS)))


@dataclass
class PhaseResult:
    """Outcome of one optimisation phase, per stacked problem."""

    u: torch.Tensor  # [S, 77, r] best factors
    v: torch.Tensor
    loss: list[float]  # best mean per-frame loss
    steps: int


@dataclass(frozen=True)
class PhaseSchedule:
    """Learning rate and stopping rules of one phase."""

    budget: int
    lr: list[float]  # starting learning rate per problem
    min_lr: float
    patience: int  # steps between checks (plateau rule, target)
    improvement: float  # relative drop of the best loss that counts as progress
    stop_after_plateaus: int  # checks at min_lr without progress before a problem stops (0: never)
    worst_frame_extra: float  # extra weight of the worst frame
    frames_per_step: int  # k; 0 or >= n: every frame
    cosine: bool = False  # learning rate follows a cosine from lr to min_lr over the budget
    target_mse: float | None = None  # stop a problem once its best pixel MSE is at most this


class BatchedOptimiser:
    """Fits one shape of stacked problem (S, n, k, sizes, phase); reusable across keyframes.

    Buffers are allocated once per shape, so a captured CUDA graph replays for every keyframe
    of that shape after ``load`` copies the new problem into them.
    """

    def __init__(
        self,
        forward: Forward,
        latent_forward: LatentForward,
        pixel_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        latent_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        options: StepOptions,
        seed: int = 0,
    ) -> None:
        self.forward = forward
        self.latent_forward = latent_forward
        self.pixel_loss = pixel_loss
        self.latent_loss = latent_loss
        self.options = options
        self.seed = seed
        self._graphs: dict[tuple, _Compiled] = {}
        self._pool: Any = None  # the CUDA-graph memory pool all shapes share (torch's handle)

    def graph_pool(self) -> Any:
        """The memory pool of this optimiser's captured steps (made on first use)."""
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        return self._pool

    def release_graph_pool(self) -> None:
        """Give a failed capture's memory back: drop its pool, then the cached blocks."""
        self._pool = None
        gc.collect()  # the failed step's tensors, held by the exception's frames
        torch.cuda.empty_cache()

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Autocast to ``options.autocast`` around the networks, or nothing."""
        if self.options.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.options.autocast)

    def run(
        self,
        problem: StackedProblem,
        u0: torch.Tensor,
        v0: torch.Tensor,
        schedule: PhaseSchedule,
        latent: bool,
    ) -> PhaseResult:
        """Optimise from ``(u0, v0)`` ``[S, ...]``; returns the best factors of each problem."""
        n = problem.frames
        k = n if schedule.frames_per_step <= 0 else min(schedule.frames_per_step, n)
        targets = problem.latent_targets if latent else problem.targets
        assert targets is not None  # each phase's problem holds its targets
        key = (latent, k, schedule.cosine, tuple(u0.shape), tuple(v0.shape),
               tuple(targets.shape), problem.prev_u is None)  # fmt: skip
        compiled = self._graphs.get(key)
        if compiled is None:
            compiled = _Compiled(self, problem, u0, v0, k, latent, schedule.cosine)
            self._graphs[key] = compiled
        return compiled.run(problem, u0, v0, schedule)


class _Compiled:
    """Static buffers, the step function and (on CUDA, optionally) its captured graph."""

    def __init__(
        self,
        owner: BatchedOptimiser,
        problem: StackedProblem,
        u0: torch.Tensor,
        v0: torch.Tensor,
        k: int,
        latent: bool,
        cosine: bool,
    ) -> None:
        self.owner = owner
        self.latent = latent
        self.k = k
        self.cosine = cosine
        device = u0.device
        stack, n = problem.stack, problem.frames
        self.p = _clone_problem(problem)
        self.u = u0.clone().requires_grad_(True)
        self.v = v0.clone().requires_grad_(True)
        self.best_u, self.best_v = u0.clone(), v0.clone()
        self.adam = DeviceAdam([self.u, self.v])
        self.best_loss = torch.full((stack,), math.inf, device=device)
        self.best_mse = torch.full((stack,), math.inf, device=device)
        self.estimate = torch.zeros(stack, n, device=device)
        self.estimate_mse = torch.full((stack, n), math.inf, device=device)
        self.worst = torch.full((stack,), -1, dtype=torch.long, device=device)
        self.stale_x0 = torch.zeros_like(problem.group_in)
        # Learning rates in float64 (torch.optim.Adam keeps them as Python floats).
        self.budget = torch.ones(1, device=device, dtype=torch.float64)  # cosine: its length
        self.lr_floor = torch.zeros(1, device=device, dtype=torch.float64)  # cosine: min / start
        self.lr_now = torch.ones(stack, device=device, dtype=torch.float64)  # each problem's lr
        self.extra = torch.zeros(1, device=device)  # extra weight of the worst frame
        self.active = torch.ones(stack, device=device, dtype=torch.float64)
        self.counter = torch.zeros(1, dtype=torch.long, device=device)
        self.subset_scores = torch.zeros(SUBSET_DRAWS, stack, n, device=device)
        self.all_frames = torch.arange(n, device=device).expand(stack, n).contiguous()
        loss_fn = self._loss
        if owner.options.compile_mode is not None:
            loss_fn = torch.compile(loss_fn, mode=owner.options.compile_mode, dynamic=False)
        self.loss_fn = loss_fn
        self.graph: torch.cuda.CUDAGraph | None = None
        self.use_graph = owner.options.cuda_graph and device.type == "cuda"

    # -- the step ------------------------------------------------------------------------

    def _subset(self) -> torch.Tensor:
        """Frames scored this step ``[S, k]``: all, or k random ones with the worst among them."""
        if self.k == self.p.frames:
            return self.all_frames
        scores = self.subset_scores.index_select(0, self.counter % SUBSET_DRAWS).squeeze(0)
        return choose_frames(scores, self.worst, self.k)

    def _loss(
        self, u: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, stale_x0: torch.Tensor,
        worst: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """(total, per-frame loss [S, k], x0 [S, k, ...], per-frame pixel MSE [S, k])."""
        p = self.p
        stack, n, k = p.stack, p.frames, idx.shape[1]
        dims = (1, 2)
        qu, qv = fake_quantize(u, dims=dims), fake_quantize(v, dims=dims)
        contexts = stacked_contexts(qu, qv, p, p.weights.gather(1, idx))
        mixed = p.prev_weight * stale_x0 + (1.0 - p.prev_weight) * p.noise
        last_in = torch.where(p.last_fixed.view(-1, 1, 1, 1), p.last_in, mixed)
        is_last = (idx == n - 1).view(stack, k, 1, 1, 1)
        latents = torch.where(is_last, last_in[:, None], p.group_in[:, None])
        flat_ctx = contexts.flatten(0, 1)
        flat_latents = latents.flatten(0, 1)
        with self.owner.autocast(flat_latents.device):
            if self.latent:
                x0 = self.owner.latent_forward(flat_latents, flat_ctx)
            else:
                x0, images = self.owner.forward(flat_latents, flat_ctx)
        rows = torch.arange(stack, device=idx.device)[:, None]
        if self.latent:
            assert p.latent_targets is not None
            per_frame = self.owner.latent_loss(
                x0.float(), p.latent_targets[rows, idx].flatten(0, 1), flat_ctx
            )
            mse = torch.full_like(per_frame, math.inf)
        else:
            assert p.targets is not None
            targets = p.targets[rows, idx].flatten(0, 1)
            per_frame = self.owner.pixel_loss(images.float(), targets, flat_ctx)
            mse = (images.float().clamp(-1, 1) - targets).pow(2).flatten(1).mean(1)
        per_frame = per_frame.view(stack, k)
        weights = 1.0 + self.extra * (idx == worst[:, None]).float()
        total = (per_frame * weights).sum(1) / weights.sum(1)
        if p.prev_u is not None and p.prev_v is not None:
            drift = (u - p.prev_u).abs().mean(dims) + (v - p.prev_v).abs().mean(dims)
            total = total + p.rate_weight * drift
        return total.sum(), per_frame, x0.float().view(stack, k, *x0.shape[1:]), mse.view(stack, k)

    def step(self) -> None:
        """One step: loss, gradient, bookkeeping, Adam (no host synchronisation)."""
        idx = self._subset()
        total, per_frame, x0, mse = self.loss_fn(self.u, self.v, idx, self.stale_x0, self.worst)
        grads = torch.autograd.grad(total, [self.u, self.v])
        with torch.no_grad():
            self.estimate.scatter_(1, idx, per_frame.detach())
            self.estimate_mse.scatter_(1, idx, mse.detach())
            mean = self.estimate.mean(1)
            improved = (mean < self.best_loss) & (self.active > 0)
            self.best_loss.copy_(torch.where(improved, mean, self.best_loss))
            self.best_mse.copy_(torch.where(improved, self.estimate_mse.mean(1), self.best_mse))
            keep = improved.view(-1, 1, 1)
            self.best_u.copy_(torch.where(keep, self.u, self.best_u))
            self.best_v.copy_(torch.where(keep, self.v, self.best_v))
            self.worst.copy_(self.estimate.argmax(1))
            n = self.p.frames
            if n >= 2:
                hit = (idx == n - 2).view(*idx.shape, 1, 1, 1)
                seen = hit.any(1)
                self.stale_x0.copy_(torch.where(seen, (x0 * hit).sum(1), self.stale_x0))
            lr = self.lr_now * self.active
            if self.cosine:
                progress = self.counter.double() / self.budget
                floor = self.lr_floor
                lr = lr * (floor + (1 - floor) * 0.5 * (1 + torch.cos(math.pi * progress)))
            self.adam.step(list(grads), lr)
            self.counter += 1

    # -- setting up a keyframe -------------------------------------------------------------

    @torch.no_grad()
    def load(
        self, problem: StackedProblem, u0: torch.Tensor, v0: torch.Tensor, schedule: PhaseSchedule
    ) -> None:
        """Copy a new problem and start into the static buffers; fresh Adam and bookkeeping."""
        _copy_problem(self.p, problem)
        self.u.copy_(u0)
        self.v.copy_(v0)
        self.best_u.copy_(u0)
        self.best_v.copy_(v0)
        self.adam.reset()
        self.best_loss.fill_(math.inf)
        self.best_mse.fill_(math.inf)
        self.estimate_mse.fill_(math.inf)
        self.worst.fill_(-1)
        self.lr_now.copy_(torch.tensor(schedule.lr, dtype=torch.float64))
        self.active.fill_(1.0)
        self.counter.zero_()
        self.extra.fill_(schedule.worst_frame_extra)
        self.budget.fill_(schedule.budget)
        self.lr_floor.fill_(schedule.min_lr / max(schedule.lr))
        n = problem.frames
        self.estimate.zero_()
        if n >= 2:
            self.stale_x0.copy_(self._initial_stale_x0())
        if self.k < n:
            rng = torch.Generator().manual_seed(self.owner.seed)
            self.subset_scores.copy_(torch.rand(self.subset_scores.shape, generator=rng))
            # The best of a subset run is judged on every frame's latest loss: start them all.
            _, per_frame, _, mse = self._loss(
                self.u, self.v, self.all_frames, self.stale_x0, self.worst
            )
            self.estimate.copy_(per_frame)
            self.estimate_mse.copy_(mse)
            self.worst.copy_(per_frame.argmax(1))

    def _initial_stale_x0(self) -> torch.Tensor:
        """x0 of frame n-2 under the starting factors (no gradient)."""
        p = self.p
        qu, qv = fake_quantize(self.u, dims=(1, 2)), fake_quantize(self.v, dims=(1, 2))
        ctx = stacked_contexts(qu, qv, p, p.weights[:, -2:-1])[:, 0]
        with self.owner.autocast(ctx.device):
            return self.owner.latent_forward(p.group_in, ctx).float()

    # -- the loop ------------------------------------------------------------------------

    def run(
        self, problem: StackedProblem, u0: torch.Tensor, v0: torch.Tensor, schedule: PhaseSchedule
    ) -> PhaseResult:
        self.load(problem, u0, v0, schedule)
        if self.use_graph and self.graph is None:
            try:
                self._capture()
            except RuntimeError as error:  # e.g. an operation that cannot be captured
                warnings.warn(f"CUDA graph capture of the fitting step failed ({error}); "
                              "running the steps eagerly", stacklevel=2)  # fmt: skip
                self.use_graph = False
                self.owner.release_graph_pool()
            self.load(problem, u0, v0, schedule)  # warm-up steps moved the factors
        stack = problem.stack
        lr = list(schedule.lr)
        scale = [1.0] * stack
        checkpoint = [math.inf] * stack
        plateaus = [0] * stack
        active = [True] * stack
        steps = 0
        for index in range(schedule.budget):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.step()
            steps = index + 1
            if steps % schedule.patience and steps < schedule.budget:
                continue
            best = self.best_loss.tolist()
            best_mse = self.best_mse.tolist()
            for i in range(stack):
                if not active[i]:
                    continue
                if schedule.target_mse is not None and best_mse[i] <= schedule.target_mse:
                    active[i] = False
                elif best[i] < checkpoint[i] * (1 - schedule.improvement):
                    checkpoint[i] = best[i]
                    plateaus[i] = 0
                elif lr[i] * scale[i] > schedule.min_lr:
                    scale[i] = max(scale[i] / 2, schedule.min_lr / lr[i])
                else:
                    plateaus[i] += 1
                    if schedule.stop_after_plateaus and plateaus[i] >= schedule.stop_after_plateaus:
                        active[i] = False
            self.lr_now.copy_(
                torch.tensor([s * r for s, r in zip(scale, lr, strict=True)], dtype=torch.float64)
            )
            self.active.copy_(torch.tensor([float(a) for a in active], dtype=torch.float64))
            if not any(active):
                break
        return PhaseResult(
            self.best_u.detach().clone(), self.best_v.detach().clone(),
            self.best_loss.tolist(), steps,
        )  # fmt: skip

    def _capture(self) -> None:
        """Warm up on a side stream, then capture one step as a CUDA graph on that stream.

        A step captures only if nothing in it waits for the host: MS-SSIM's product was the one
        operation that did (``torch.prod``'s backward asks whether a factor is zero), found with
        ``torch.cuda.set_sync_debug_mode`` (``scripts/bench_fit_step.py --diagnose``). Every
        graph of an optimiser draws from one memory pool (graphs replay one at a time and keep
        nothing in it between replays), so several shapes cost one pool, not one each.
        """
        device = self.u.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_STEPS):
                self.step()
        torch.cuda.current_stream(device).wait_stream(side)
        self.counter.zero_()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self.owner.graph_pool(), stream=side):
                self.step()
        except RuntimeError:
            graph.reset()  # give the failed capture's memory back
            del graph
            torch.cuda.empty_cache()
            raise
        self.graph = graph


def stack_problems(problems: list[StackedProblem]) -> StackedProblem:
    """Several problems of the same shape (e.g. one keyframe of several segments) as one."""
    first = problems[0]
    fields: dict[str, Any] = {}
    for name, value in vars(first).items():
        if name in ("noise", "prev_weight"):
            if any(not _same(getattr(p, name), value) for p in problems):
                raise ValueError(f"stacked problems must share {name}")
            fields[name] = value
        elif value is None:
            fields[name] = None
        else:
            fields[name] = torch.cat([getattr(p, name) for p in problems], 0)
    return StackedProblem(**fields)


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    return a == b


def _clone_problem(problem: StackedProblem) -> StackedProblem:
    fields: dict[str, Any] = {
        k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in vars(problem).items()
    }
    return StackedProblem(**fields)


def _copy_problem(into: StackedProblem, source: StackedProblem) -> None:
    for name, value in vars(source).items():
        target = getattr(into, name)
        if isinstance(value, torch.Tensor):
            target.copy_(value)
        elif value != target:
            raise ValueError(f"stacked problem field {name} changed: {target} -> {value}")
