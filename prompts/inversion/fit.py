"""The fitting loop: one level's keyframes, one after another, each over the frames it shapes.

Per keyframe: U (77 x r) and V (r x 1024) are fake-quantised to 8 bits every step, the
interval's frames are generated in one batch (``gen.forward`` is differentiable w.r.t. the
context), the loss is MSE + perceptual + |c| with extra weight on the previous step's worst
frame, and Adam's learning rate halves when a patience window brings no new best. The best
(quantised) factors become the keyframe; the frames are then regenerated exactly as a decoder
will, and that regeneration's x0 feeds the previous-latent term of the next group.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from prompts.inversion.losses import FitLoss, psnr_from_mse
from prompts.inversion.plan import KeyframeSpan, keyframe_spans
from prompts.inversion.presets import FitPreset
from prompts.keyframe import CONTEXT_DIM, CONTEXT_TOKENS, Keyframe, compose_context, interpolate_context
from prompts.quant import fake_quantize, quantize_tensor


@dataclass(frozen=True)
class LevelConfig:
    """What defines one level's fit besides the source frames."""

    rank: int
    interval: int
    chunk_frames: int
    noise_seed: int = 88
    prev_latent_weight: float = 0.05
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
    images: np.ndarray  # uint8 [n, H, W, 3]: the regenerated frames of the span
    group_input: np.ndarray
    last_x0: np.ndarray


def stream_noise(noise_seed: int, latent_shape: tuple[int, int, int, int]) -> np.ndarray:
    """The stream's fixed noise: RandomState(seed) normal draws, float64 cast to float32."""
    return np.random.RandomState(noise_seed).randn(*latent_shape).astype(np.float32)


def images_to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator images ``[B, 3, H, W]`` in [-1, 1] to ``uint8 [B, H, W, 3]``."""
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def frames_to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """``uint8 [B, H, W, 3]`` frames to float ``[B, 3, H, W]`` in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return tensor.permute(0, 3, 1, 2).float() / 127.5 - 1.0


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
    ) -> None:
        self.gen = generator
        self.frames = frames
        self.config = config
        self.preset = preset
        self.device = torch.device(generator.device)
        self.loss = loss.to(self.device)
        self.spans = keyframe_spans(len(frames), config.interval, config.chunk_frames)
        weight = np.float32(config.prev_latent_weight)
        self._prev_weight = weight
        self._noise_part = (np.float32(1) - weight) * stream_noise(config.noise_seed, init_latent.shape)
        self.init_input = self.unet_input(init_latent)

    def unet_input(self, prev_latent: np.ndarray) -> np.ndarray:
        """A group's UNet input ``w * prev + (1 - w) * noise`` (float32)."""
        return (self._prev_weight * prev_latent.astype(np.float32) + self._noise_part).astype(np.float32)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # bf16 halves the UNet's time on tensor-core GPUs; x0 and the loss stay fp32.
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, latents: torch.Tensor, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast():
            x0, image = self.gen.forward(latents, contexts)
        return x0.float(), image.float()

    def _initial_factors(self, span: KeyframeSpan, state: FitState) -> tuple[torch.Tensor, torch.Tensor]:
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
        device = self.device
        first = span.index == 0
        n = len(span.frames)
        targets = frames_to_tensor(self.frames[span.frames], device)
        s = torch.tensor(span.weights, device=device).view(n, 1, 1)
        if first:
            prev_u = prev_v = None
        else:
            pu, pv = state.keyframes[-1].factors()
            prev_u, prev_v = torch.from_numpy(pu).to(device), torch.from_numpy(pv).to(device)
        group_in = torch.from_numpy(self.init_input if first else state.group_input).to(device)
        # The keyframe's own frame starts the next group: init latent on a chunk start, else the
        # x0 of the frame before it (a batch frame; for n == 1 the previous keyframe's frame).
        # Inside the loop that x0 is taken from the previous iteration, detached, so the whole
        # span is one batch; the final regeneration below uses the exact value.
        fixed_last_in = torch.from_numpy(self.init_input).to(device) if span.end_starts_chunk or first else None
        if fixed_last_in is None and n == 1:
            fixed_last_in = torch.from_numpy(self.unet_input(state.last_x0)).to(device)

        u0, v0 = self._initial_factors(span, state)
        u = u0.clone().requires_grad_(True)
        v = v0.clone().requires_grad_(True)
        lr = self.preset.lr if (first or not self.config.warm_start) else self.preset.warm_lr
        optimizer = torch.optim.Adam([u, v], lr=lr)
        budget = self.preset.first_iterations if first else self.preset.later_iterations
        patience = self.preset.first_patience if first else self.preset.later_patience

        stale_x0: torch.Tensor | None = None
        best_loss, best_mse = math.inf, math.inf
        best_u, best_v = u0.clone(), v0.clone()
        checkpoint_loss = math.inf
        plateaus = 0
        worst = -1
        iterations = 0
        for iteration in range(budget):
            iterations = iteration + 1
            qu, qv = fake_quantize(u), fake_quantize(v)
            contexts = self._contexts(qu, qv, prev_u, prev_v, s)
            if fixed_last_in is not None:
                last_in = fixed_last_in
            else:
                if stale_x0 is None:
                    stale_x0 = self._x0_before_end(contexts, group_in)
                last_in = self._prev_weight * stale_x0 + torch.from_numpy(self._noise_part).to(device)
            latents = torch.cat([group_in.expand(n - 1, -1, -1, -1), last_in], 0)
            x0, images = self._forward(latents, contexts)
            per_frame = self.loss(images, targets, contexts)
            weights = torch.ones(n, device=device)
            if worst >= 0:
                weights[worst] += self.preset.worst_frame_extra
            total = (per_frame * weights).sum() / weights.sum()
            optimizer.zero_grad(set_to_none=True)
            total.backward()

            with torch.no_grad():
                mean_loss = float(per_frame.mean())
                worst = int(per_frame.argmax())
                if n >= 2:
                    stale_x0 = x0[n - 2 : n - 1].detach()
                if mean_loss < best_loss:
                    best_loss = mean_loss
                    best_mse = float((images - targets).pow(2).mean())
                    best_u, best_v = u.detach().clone(), v.detach().clone()
            optimizer.step()

            target = self.preset.target_psnr
            if target is not None and psnr_from_mse(best_mse) >= target:
                break
            if iterations % patience == 0:
                if best_loss < checkpoint_loss * (1 - self.preset.improvement):
                    checkpoint_loss = best_loss
                    plateaus = 0
                elif lr > self.preset.min_lr:
                    lr = max(lr / 2, self.preset.min_lr)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                else:
                    plateaus += 1
                    if self.preset.stop_after_plateaus and plateaus >= self.preset.stop_after_plateaus:
                        break

        factors = (best_u.cpu().numpy(), best_v.cpu().numpy())
        keyframe = Keyframe(span.end, quantize_tensor(factors[0]), quantize_tensor(factors[1]))
        images_u8, mse, group_input, last_x0 = self.regenerate(span, keyframe, state)
        stats = KeyframeStats(
            frame=span.end,
            iterations=iterations,
            seconds=time.perf_counter() - started,
            loss=best_loss,
            psnr=psnr_from_mse(mse),
        )
        return SpanResult(keyframe, factors, stats, images_u8, group_input, last_x0)

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
            x0, _ = self._forward(group_in, contexts[-2:-1].detach())
        return x0

    @torch.no_grad()
    def regenerate(
        self, span: KeyframeSpan, keyframe: Keyframe, state: FitState
    ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """The span's frames as a decoder makes them: (uint8 frames, MSE, next group input, x0 of p_k)."""
        device = self.device
        first = span.index == 0
        if first:
            contexts = [keyframe.context()]
        else:
            previous = state.keyframes[-1]
            contexts = [interpolate_context(previous, keyframe, f) for f in span.frames[:-1]]
            contexts.append(keyframe.context())
        ctx = torch.from_numpy(np.stack(contexts)).to(device)
        images = []
        x0_before: np.ndarray | None = None
        if len(contexts) > 1:
            group_in = torch.from_numpy(state.group_input).to(device)
            x0, image = self._forward(group_in.expand(len(contexts) - 1, -1, -1, -1), ctx[:-1])
            images.append(image)
            x0_before = x0[-1:].cpu().numpy()
        elif not first:
            x0_before = state.last_x0
        if first or span.end_starts_chunk:
            last_input = self.init_input
        else:
            assert x0_before is not None
            last_input = self.unet_input(x0_before)
        x0_end, image_end = self._forward(torch.from_numpy(last_input).to(device), ctx[-1:])
        images.append(image_end)
        stacked = torch.cat(images, 0)
        targets = frames_to_tensor(self.frames[span.frames], device)
        mse = float((stacked - targets).pow(2).mean())
        return images_to_uint8(stacked), mse, last_input, x0_end.cpu().numpy()

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
