"""The objective of each keyframe of one level: which frames it scores, the UNet inputs they
see under the level's previous-latent rule, and the fixed tensors of its loss.

``KeyframeProblems`` holds what every keyframe's objective shares (the source frames and their
latents, the stream noise, the init latent, the generator's forward passes); ``problem(span,
state)`` is one keyframe's ``StackedProblem`` (a stack of one) for the batched and sequential
loops, ``objective`` its per-frame loss for given factors with the exact x0 a decoder feeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from authoring.batched import StackedProblem, stacked_contexts
from authoring.fit_state import FitState, LevelConfig
from authoring.losses import FitLoss
from authoring.plan import KeyframeSpan, keyframe_spans
from authoring.presets import FitPreset
from authoring.source import frames_to_tensor
from engines.schedule import mix_latent, stream_noise, unmix_latent, x0_from_eps
from prompts.quant import fake_quantize
from prompts.stream_model import CHAINED


class KeyframeProblems:
    """The keyframes' objectives of one level of one stream (``spans``, one per keyframe)."""

    def __init__(
        self,
        generator: Any,
        frames: np.ndarray,
        init_latent: np.ndarray,
        config: LevelConfig,
        preset: FitPreset,
        loss: FitLoss,
        latent_targets: np.ndarray | None = None,
    ) -> None:
        """``loss`` on the generator's device; ``latent_targets``: encoder latents of ``frames``."""
        self.gen = generator
        self.frames = frames
        self.config = config
        self.preset = preset
        self.loss = loss
        self.device = torch.device(generator.device)
        self.spans = keyframe_spans(
            len(frames), config.interval, config.chunk_frames, config.prev_latent_rule
        )
        height, width = frames.shape[1:3]
        self.noise = torch.from_numpy(
            stream_noise(config.noise_seed, height, width, generator.latent_geometry)
        ).to(self.device)
        self.init_latent = torch.from_numpy(np.ascontiguousarray(init_latent, np.float32)).to(
            self.device
        )
        self.init_input = self.unet_input(self.init_latent)
        self.latent_targets = (
            torch.from_numpy(latent_targets).to(self.device) if latent_targets is not None else None
        )

    @property
    def chained(self) -> bool:
        return self.config.prev_latent_rule == CHAINED

    def unet_input(self, prev_latent: torch.Tensor) -> torch.Tensor:
        """A group's UNet input ``w * prev + (1 - w) * noise``, as the stream decoder mixes it."""
        return mix_latent(prev_latent.to(self.device), self.noise, self.config.prev_latent_weight)

    def unmix(self, unet_input: torch.Tensor) -> torch.Tensor:
        """``prev`` of a group input ``w * prev + (1 - w) * noise``."""
        return unmix_latent(unet_input.to(self.device), self.noise, self.config.prev_latent_weight)

    def forward(
        self, latents: torch.Tensor, contexts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, image) in float32."""
        # Precision is the generator's: the fitting commands load it in bf16 on CUDA.
        x0, image = self.gen.forward(latents, contexts)
        return x0.float(), image.float()

    def x0(self, latents: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """x0 alone (UNet, no decoder)."""
        eps = self.gen.backend.eps(latents.to(self.device), contexts.to(self.device))
        return x0_from_eps(latents, eps)

    def problem(self, span: KeyframeSpan, state: FitState) -> StackedProblem:
        """The fixed tensors of one keyframe's objective (a stack of one)."""
        device = self.device
        prev_u = prev_v = None
        if span.index > 0:
            pu, pv = state.keyframes[-1].factors()
            prev_u, prev_v = torch.from_numpy(pu).to(device), torch.from_numpy(pv).to(device)
        group_in, last_in, last_fixed = self.inputs(span, state)
        targets = frames_to_tensor(self.frames[span.frames], device)
        latent_targets = (
            self.latent_targets[span.frames] if self.latent_targets is not None else None
        )
        anchored = prev_u is not None and self.config.warm_start and not self.preset.cold_start
        rate = self.preset.delta_penalty if anchored else 0.0
        return StackedProblem(
            targets=targets[None],
            latent_targets=None if latent_targets is None else latent_targets[None],
            weights=torch.tensor(span.weights, device=device)[None],
            prev_u=None if prev_u is None else prev_u[None],
            prev_v=None if prev_v is None else prev_v[None],
            group_in=group_in, last_in=last_in,
            last_fixed=torch.tensor([last_fixed], device=device),
            noise=self.noise, prev_weight=self.config.prev_latent_weight,
            rate_weight=torch.tensor([rate], device=device), subset_seeds=(self.config.seed,),
        )  # fmt: skip

    def inputs(
        self, span: KeyframeSpan, state: FitState
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(UNet input of frames before the keyframe's own, input of the keyframe's own frame,
        whether the latter is fixed) under the level's previous-latent rule.

        ``chunk-reset``: the frames of ``[p_{k-1}, p_k)`` share the group input; frame ``p_k``
        starts the next group: the init latent on a chunk start, else the x0 of ``p_k - 1``
        (taken from the latest step while optimising, so the span stays one batch; for a span
        of one frame that is the previous keyframe's frame, known exactly).
        ``chained``: the frames ``(p_{k-1}, p_k]`` form one group on the x0 of ``p_{k-1}``.
        """
        if span.index == 0:
            return self.init_input, self.init_input, True
        if self.chained:
            group = self.unet_input(torch.from_numpy(state.last_x0))
            return group, group, True
        group = torch.from_numpy(state.group_input).to(self.device)
        if span.end_starts_chunk:
            return group, self.init_input, True
        if len(span.frames) == 1:
            return group, self.unet_input(torch.from_numpy(state.last_x0)), True
        return group, group, False

    def objective(
        self, span: KeyframeSpan, state: FitState, u: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Per-frame pixel loss of the span for factors (U, V), the keyframe's own frame fed the
        exact x0 of the frame before it (the loop uses the latest step's)."""
        problem = self.problem(span, state)
        qu, qv = fake_quantize(u), fake_quantize(v)
        contexts = stacked_contexts(qu[None], qv[None], problem, problem.weights)[0]
        last_in = problem.last_in
        if not bool(problem.last_fixed[0]):
            last_in = self.unet_input(self.x0(problem.group_in, contexts[-2:-1]))
        n = len(span.frames)
        latents = torch.cat([problem.group_in.expand(n - 1, -1, -1, -1), last_in], 0)
        _, images = self.forward(latents, contexts)
        assert problem.targets is not None
        return self.loss(images, problem.targets[0], contexts)
