"""What a level's fit is given and what it leaves: the level's config, each keyframe's stats,
the state carried from one keyframe to the next (what a checkpoint holds) and one keyframe's
outcome. Plain data, shared by the fitting loop (``authoring.fit``) and the modules it drives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from authoring.levels import LevelSpec
from authoring.plan import KeyframeSpan
from prompts.keyframe import Keyframe
from prompts.stream_model import (
    CHUNK_RESET,
    NOISE_SEED,
    PREV_LATENT_RULES,
    PREV_LATENT_WEIGHT,
)

Factors = tuple[np.ndarray, np.ndarray]  # float U [77, r], V [r, 1024]

# (keyframe's frame index, previous latent [1, 4, h, w], rank) -> starting (U [77, r], V [r, 1024])
FactorPredictor = Callable[[int, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class LevelConfig(LevelSpec):
    """What defines one level's fit besides the source frames: the level (rank, interval,
    name) and its chunking, seeds and previous-latent rule."""

    chunk_frames: int
    noise_seed: int = NOISE_SEED
    prev_latent_weight: float = PREV_LATENT_WEIGHT
    warm_start: bool = True
    seed: int = 0  # seeds random initialisations (cold starts, frame subsets)
    prev_latent_rule: str = CHUNK_RESET  # or CHAINED (the original release's)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prev_latent_rule not in PREV_LATENT_RULES:
            raise ValueError(f"unknown previous-latent rule {self.prev_latent_rule!r}")


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


# (the keyframe's span, the state before it) -> its starting float factors, or None: the default
InitialFactors = Callable[[KeyframeSpan, FitState], Factors | None]


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
