"""The fitting loop: one level's keyframes, one after another, each over the frames it shapes.

Per keyframe: U (77 x r) and V (r x 1024) are fake-quantised to 8 bits every step, the
interval's frames are generated in one batch (``gen.forward`` is differentiable w.r.t. the
context), the loss is MSE + perceptual + |c| with extra weight on the previous step's worst
frame, and Adam's learning rate halves when a patience window brings no new best. The best
(quantised) factors become the keyframe; the frames are then regenerated exactly as a decoder
will, and that regeneration's x0 feeds the previous-latent term of the next group.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from authoring.losses import FitLoss, psnr_from_mse
from authoring.plan import KeyframeSpan, keyframe_spans
from authoring.presets import FitPreset
from engines.schedule import mix_latent, stream_noise, x0_from_eps
from prompts.keyframe import Keyframe, compose_context, interpolate_context
from prompts.quant import fake_quantize, quantize_tensor
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS, NOISE_SEED, PREV_LATENT_WEIGHT

# (keyframe's frame index, previous latent [1, 4, h, w], rank) -> starting (U [77, r], V [r, 1024])
FactorPredictor = Callable[[int, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class LevelConfig:
    """What defines one level's fit besides the source frames."""

    rank: int
    interval: int
    chunk_frames: int
    noise_seed: int = NOISE_SEED
    prev_latent_weight: float = PREV_LATENT_WEIGHT
    warm_start: bool = True
    seed: int = 0  # seeds the random initialisation of cold-started keyframes

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be at least 1, got {self.rank}")
        if self.interval < 1:
            raise ValueError(f"interval must be at least 1, got {self.interval}")

    @property
    def name(self) -> str:
        """Level directory name, e.g. ``r8n10``."""
        return f"r{self.rank}n{self.interval}"


@dataclass
class KeyframeStats:
    """How one keyframe's fit went."""

    frame: int
    iterations: int
    seconds: float
    loss: float  # best mean per-frame loss seen while fitting
    psnr: float  # PSNR (dB, float images) of the regenerated frames the keyframe shapes


@dataclass
class FitState:
    """Everything the next keyframe's fit needs from the ones before (what a checkpoint holds)."""

    keyframes: list[Keyframe] = field(default_factory=list)
    stats: list[KeyframeStats] = field(default_factory=list)
    factors: tuple[np.ndarray, np.ndarray] | None = None  # float U, V of the last keyframe
    group_input: np.ndarray | None = None  # UNet input of the group starting at the last keyframe
    last_x0: np.ndarray | None = None  # x0 latent of the last keyframe's frame


@dataclass
class SpanResult:
    """The outcome of fitting one keyframe."""

    keyframe: Keyframe
    factors: tuple[np.ndarray, np.ndarray]
    stats: KeyframeStats
    decoded_start: int  # first frame of ``decoded``
    decoded: np.ndarray  # uint8 [m, H, W, 3]: frames now final, exactly as a decoder makes them
    group_input: np.ndarray
    last_x0: np.ndarray


def frames_to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """``uint8 [B, H, W, 3]`` frames to float ``[B, 3, H, W]`` in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return tensor.permute(0, 3, 1, 2).float() / 127.5 - 1.0


@dataclass
class _SpanProblem:
    """Fixed tensors of one keyframe's objective."""

    n: int  # frames optimised
    targets: torch.Tensor  # [n, 3, H, W] in [-1, 1]
    latent_targets: torch.Tensor | None  # [n, 4, h, w] encoder latents of the targets
    weights: torch.Tensor  # [n, 1, 1] weight s/N of this keyframe in each frame
    prev_u: torch.Tensor | None  # previous keyframe's dequantised factors (None for keyframe 0)
    prev_v: torch.Tensor | None
    group_in: torch.Tensor  # UNet input of the frames before the keyframe's own
    fixed_last_in: torch.Tensor | None  # UNet input of the keyframe's own frame when it is fixed
    rate_anchor: bool  # penalise distance from the previous keyframe (the delta coder's prediction)


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
        predict_factors: FactorPredictor | None = None,
    ) -> None:
        """``latent_targets`` (encoder latents of ``frames``) enable the preset's latent phase;
        ``predict_factors`` (a prompt encoder, e.g. nano's) gives every keyframe its starting factors."""
        self.gen = generator
        self.predict_factors = predict_factors
        self.frames = frames
        self.config = config
        self.preset = preset
        self.device = torch.device(generator.device)
        self.loss = loss.to(self.device)
        self.spans = keyframe_spans(len(frames), config.interval, config.chunk_frames)
        height, width = frames.shape[1:3]
        self._noise = torch.from_numpy(stream_noise(config.noise_seed, height, width)).to(
            self.device
        )
        self.init_latent = torch.from_numpy(np.ascontiguousarray(init_latent, np.float32)).to(
            self.device
        )
        self.init_input = self.unet_input(self.init_latent)
        self.latent_targets = (
            torch.from_numpy(latent_targets).to(self.device) if latent_targets is not None else None
        )

    def unet_input(self, prev_latent: torch.Tensor) -> torch.Tensor:
        """A group's UNet input ``w * prev + (1 - w) * noise``, as the stream decoder mixes it."""
        return mix_latent(prev_latent.to(self.device), self._noise, self.config.prev_latent_weight)

    def _unmix(self, unet_input: torch.Tensor) -> torch.Tensor:
        """``prev`` of a group input ``w * prev + (1 - w) * noise``."""
        weight = self.config.prev_latent_weight
        return (unet_input.to(self.device) - (1.0 - weight) * self._noise) / weight

    def _forward(
        self, latents: torch.Tensor, contexts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Precision is the generator's: the fitting commands load it in bf16 on CUDA.
        x0, image = self.gen.forward(latents, contexts)
        return x0.float(), image.float()

    def _x0(self, latents: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """x0 alone (UNet, no decoder): the cheap objective of the latent phase."""
        eps = self.gen.backend.eps(latents.to(self.device), contexts.to(self.device))
        return x0_from_eps(latents, eps)

    def _initial_factors(
        self, span: KeyframeSpan, state: FitState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.predict_factors is not None:
            # The previous latent of the frames before the keyframe: the init latent for keyframe
            # 0, else the one the group starting at the previous keyframe was mixed from.
            prev = (
                self.init_latent
                if span.index == 0
                else self._unmix(torch.from_numpy(state.group_input))
            )
            u, v = self.predict_factors(span.end, prev, self.config.rank)
            return u.to(self.device), v.to(self.device)
        if span.index > 0 and self.config.warm_start and state.factors is not None:
            u, v = (torch.from_numpy(a.copy()) for a in state.factors)
        else:
            rng = torch.Generator().manual_seed(self.config.seed * 1_000_003 + span.index)
            u = torch.rand(CONTEXT_TOKENS, self.config.rank, generator=rng)
            v = torch.rand(self.config.rank, CONTEXT_DIM, generator=rng)
        return u.to(self.device), v.to(self.device)

    def fit_span(self, span: KeyframeSpan, state: FitState) -> SpanResult:
        """Fit keyframe ``span.index`` given the fitted keyframes before it."""
        started = time.perf_counter()
        # A keyframe 0 started from predicted factors gets a later keyframe's budget and step.
        first = span.index == 0 and self.predict_factors is None
        problem = self._problem(span, state)
        u, v = self._initial_factors(span, state)
        cold = first or (not self.config.warm_start and self.predict_factors is None)
        lr = self.preset.lr if cold else self.preset.warm_lr
        budget = self.preset.first_iterations if first else self.preset.later_iterations
        latent_budget = (
            round(budget * self.preset.latent_fraction) if self.latent_targets is not None else 0
        )
        iterations = 0
        best_loss = math.inf
        for phase, phase_budget in (("latent", latent_budget), ("pixel", budget - latent_budget)):
            if phase_budget <= 0:
                continue
            u, v, best_loss, used = self._optimise(
                problem, u, v, lr, phase_budget, phase == "latent", first
            )
            iterations += used

        factors = (u.cpu().numpy(), v.cpu().numpy())
        keyframe = Keyframe(span.end, quantize_tensor(factors[0]), quantize_tensor(factors[1]))
        decoded_start, decoded, mse, group_input, last_x0 = self.regenerate(span, keyframe, state)
        stats = KeyframeStats(
            frame=span.end,
            iterations=iterations,
            seconds=time.perf_counter() - started,
            loss=best_loss if iterations else mse,  # no step ran (encoder preset): the MSE
            psnr=psnr_from_mse(mse),
        )
        return SpanResult(keyframe, factors, stats, decoded_start, decoded, group_input, last_x0)

    def _problem(self, span: KeyframeSpan, state: FitState) -> _SpanProblem:
        """The fixed tensors of one keyframe's objective."""
        device = self.device
        n = len(span.frames)
        if span.index == 0:
            prev_u = prev_v = None
        else:
            pu, pv = state.keyframes[-1].factors()
            prev_u, prev_v = torch.from_numpy(pu).to(device), torch.from_numpy(pv).to(device)
        group_in = (
            self.init_input if span.index == 0 else torch.from_numpy(state.group_input).to(device)
        )
        # The keyframe's own frame starts the next group: init latent on a chunk start, else the
        # x0 of the frame before it (a batch frame; for n == 1 the previous keyframe's frame).
        # While optimising, that x0 comes from the previous iteration, detached, so the whole
        # span is one batch; the final regeneration uses the exact value.
        fixed_last_in = self.init_input if span.end_starts_chunk or span.index == 0 else None
        if fixed_last_in is None and n == 1:
            fixed_last_in = self.unet_input(torch.from_numpy(state.last_x0))
        latent_targets = (
            self.latent_targets[span.frames] if self.latent_targets is not None else None
        )
        return _SpanProblem(
            n=n,
            targets=frames_to_tensor(self.frames[span.frames], device),
            latent_targets=latent_targets,
            weights=torch.tensor(span.weights, device=device).view(n, 1, 1),
            prev_u=prev_u,
            prev_v=prev_v,
            group_in=group_in,
            fixed_last_in=fixed_last_in,
            rate_anchor=prev_u is not None
            and self.config.warm_start
            and self.preset.delta_penalty > 0,
        )

    def objective(
        self, span: KeyframeSpan, state: FitState, u: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Per-frame pixel loss of the span for factors (U, V), the keyframe's own frame fed the
        exact x0 of the frame before it (the loop uses the previous iteration's)."""
        problem = self._problem(span, state)
        contexts = self._contexts(
            fake_quantize(u), fake_quantize(v), problem.prev_u, problem.prev_v, problem.weights
        )
        last_in = problem.fixed_last_in
        if last_in is None:
            last_in = self.unet_input(self._x0_before_end(contexts, problem.group_in))
        latents = torch.cat([problem.group_in.expand(problem.n - 1, -1, -1, -1), last_in], 0)
        _, images = self._forward(latents, contexts)
        return self.loss(images, problem.targets, contexts)

    def _optimise(
        self,
        problem: _SpanProblem,
        u0: torch.Tensor,
        v0: torch.Tensor,
        lr: float,
        budget: int,
        latent: bool,
        first: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, float, int]:
        """Adam on (U, V) for at most ``budget`` iterations; returns the best factors, loss, iterations."""
        preset = self.preset
        n = problem.n
        u = u0.clone().requires_grad_(True)
        v = v0.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([u, v], lr=lr)
        patience = preset.first_patience if first else preset.later_patience
        stale_x0: torch.Tensor | None = None
        best_loss, best_mse = math.inf, math.inf
        best_u, best_v = u0.clone(), v0.clone()
        checkpoint_loss = math.inf
        plateaus, worst, iterations = 0, -1, 0
        for iteration in range(budget):
            iterations = iteration + 1
            qu, qv = fake_quantize(u), fake_quantize(v)
            contexts = self._contexts(qu, qv, problem.prev_u, problem.prev_v, problem.weights)
            last_in = problem.fixed_last_in
            if last_in is None:
                if stale_x0 is None:
                    stale_x0 = self._x0_before_end(contexts, problem.group_in)
                last_in = self.unet_input(stale_x0)
            latents = torch.cat([problem.group_in.expand(n - 1, -1, -1, -1), last_in], 0)
            if latent:
                x0 = self._x0(latents, contexts)
                assert problem.latent_targets is not None
                per_frame = self.loss.latent(x0, problem.latent_targets, contexts)
            else:
                x0, images = self._forward(latents, contexts)
                per_frame = self.loss(images, problem.targets, contexts)
            weights = torch.ones(n, device=self.device)
            if worst >= 0:
                weights[worst] += preset.worst_frame_extra
            total = (per_frame * weights).sum() / weights.sum()
            if problem.rate_anchor:
                # Rate term: the chunk codec codes a warm-started keyframe as its difference
                # from the previous one, so small moves are cheap and idle ones free.
                assert problem.prev_u is not None and problem.prev_v is not None
                drift = (u - problem.prev_u).abs().mean() + (v - problem.prev_v).abs().mean()
                total = total + preset.delta_penalty * drift
            optimizer.zero_grad(set_to_none=True)
            total.backward()

            with torch.no_grad():
                mean_loss = float(per_frame.mean())
                worst = int(per_frame.argmax())
                if n >= 2:
                    stale_x0 = x0[n - 2 : n - 1].detach()
                if mean_loss < best_loss:
                    best_loss = mean_loss
                    if not latent:
                        best_mse = float((images.clamp(-1, 1) - problem.targets).pow(2).mean())
                    best_u, best_v = u.detach().clone(), v.detach().clone()
            optimizer.step()

            if (
                not latent
                and preset.target_psnr is not None
                and psnr_from_mse(best_mse) >= preset.target_psnr
            ):
                break
            if iterations % patience == 0:
                if best_loss < checkpoint_loss * (1 - preset.improvement):
                    checkpoint_loss = best_loss
                    plateaus = 0
                elif lr > preset.min_lr:
                    lr = max(lr / 2, preset.min_lr)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                else:
                    plateaus += 1
                    if preset.stop_after_plateaus and plateaus >= preset.stop_after_plateaus:
                        break
        return best_u, best_v, best_loss, iterations

    def _contexts(
        self,
        qu: torch.Tensor,
        qv: torch.Tensor,
        prev_u: torch.Tensor | None,
        prev_v: torch.Tensor | None,
        s: torch.Tensor,
    ) -> torch.Tensor:
        """Contexts ``[n, 77, 1024]`` of the span's frames from this keyframe's quantised factors."""
        if prev_u is None or prev_v is None:
            return compose_context(qu, qv).unsqueeze(0)
        one = 1.0 - s
        return compose_context(one * prev_u + s * qu, one * prev_v + s * qv)

    def _x0_before_end(self, contexts: torch.Tensor, group_in: torch.Tensor) -> torch.Tensor:
        """x0 of frame ``p_k - 1`` (in the span's first group) under the given contexts, no grad."""
        with torch.no_grad():
            return self._x0(group_in, contexts[-2:-1].detach())

    @torch.no_grad()
    def regenerate(
        self, span: KeyframeSpan, keyframe: Keyframe, state: FitState
    ) -> tuple[int, np.ndarray, float, np.ndarray, np.ndarray]:
        """Regenerate with the decoder's own batches: the group ``[p_{k-1}, p_k)`` in one call,
        then frame ``p_k`` (the first frame of the next group).

        Returns (first final frame, final frames, MSE of the span's frames, next group input,
        x0 of p_k). Frame ``p_k`` alone is final only when it is the stream's last frame; else it
        becomes final with the next keyframe's group.
        """
        backend = self.gen.backend
        last_span = span.index == len(self.spans) - 1
        decoded_start, decoded = span.end, []
        if span.index == 0:
            end_input = self.init_input
        else:
            previous = state.keyframes[-1]
            contexts = [previous.context()] + [
                interpolate_context(previous, keyframe, f) for f in span.frames[:-1]
            ]
            ctx = torch.from_numpy(np.stack(contexts)).to(self.device)
            group_in = torch.from_numpy(state.group_input).to(self.device)
            x0, group_frames = backend.generate(group_in.expand(len(contexts), -1, -1, -1), ctx)
            decoded_start = span.start
            decoded.append(group_frames.cpu().numpy())
            end_input = self.init_input if span.end_starts_chunk else self.unet_input(x0[-1:])
        end_ctx = torch.from_numpy(keyframe.context()[None]).to(self.device)
        x0_end, end_frame = backend.generate(end_input, end_ctx)
        span_frames = np.concatenate(decoded + [end_frame.cpu().numpy()])[-len(span.frames) :]
        if last_span:
            decoded.append(end_frame.cpu().numpy())
        targets = self.frames[span.frames].astype(np.float64)
        mse = float(((span_frames.astype(np.float64) - targets) / 127.5).__pow__(2).mean())
        final = (
            np.concatenate(decoded) if decoded else np.zeros((0, *self.frames.shape[1:]), np.uint8)
        )
        return decoded_start, final, mse, end_input.cpu().numpy(), x0_end.float().cpu().numpy()

    def fit(
        self,
        state: FitState | None = None,
        on_keyframe: Callable[[FitState, SpanResult], None] | None = None,
        progress: Any = None,
    ) -> FitState:
        """Fit every keyframe not yet in ``state``; ``on_keyframe`` runs after each (checkpointing)."""
        state = state or FitState()
        for span in self.spans[len(state.keyframes) :]:
            result = self.fit_span(span, state)
            state.keyframes.append(result.keyframe)
            state.stats.append(result.stats)
            state.factors = result.factors
            state.group_input = result.group_input
            state.last_x0 = result.last_x0
            if on_keyframe is not None:
                on_keyframe(state, result)
            if progress is not None:
                stats = result.stats
                progress.set_postfix(
                    loss=f"{stats.loss:.4f}", psnr=f"{stats.psnr:.2f}",
                    its=f"{stats.iterations / max(stats.seconds, 1e-9):.1f}/s",
                )  # fmt: skip
                progress.update(1)
        return state
