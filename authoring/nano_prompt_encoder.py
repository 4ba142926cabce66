"""An amortised prompt encoder for the nano generator: (target latent, previous latent) -> (U, V).

Trained jointly with the nano generator (scripts/train_nano.py), it predicts the low-rank
factors of a keyframe in one forward pass: ``U`` (77 x R) and ``V`` (R x 1024) for
``R = MAX_RANK``, nested so that the first ``r`` columns of ``U`` and rows of ``V`` serve the
level of rank ``r``. Nano reads each context row as a 32x32 map over the frame
(``engines.nano``), so the rows of ``V`` are maps made at that grid and ``U`` mixes them into
the 77 rows. The fitting loop starts from its factors and refines them for a few steps instead
of from random ones (docs/inversion.md, "Warm start for nano").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from authoring.source import frames_to_tensor
from engines.nano import (
    CONTEXT_GRID,
    POSITION_CHANNELS,
    ResidualBlock,
    position_channels,
    resize,
)
from engines.variants import NANO_LATENT
from prompts.stream_model import CONTEXT_TOKENS

if TYPE_CHECKING:
    import numpy as np

    from engines.generator import Generator

MAX_RANK = 16  # the nested factors serve every rank up to this
FEATURES = 64  # width of the encoder's latent-size features
GRID_FEATURES = 128  # width of its features on the 32x32 context grid
PROMPT_ENCODER_WEIGHTS = Path(__file__).with_name("weights") / "nano_prompt_encoder.safetensors"


class PromptEncoder(nn.Module):
    """Latents ``[B, C, h, w]`` of the target frame and of the previous frame -> nested
    ``U [B, 77, R]``, ``V [B, R, 1024]`` whose rank-r context is the sum of their first r terms
    (``nested_factors`` scales them into the stored ``U V / sqrt(r)`` form)."""

    def __init__(self) -> None:
        super().__init__()
        channels = NANO_LATENT.channels
        self.stem = nn.Sequential(
            nn.Conv2d(2 * channels + POSITION_CHANNELS, FEATURES, 3, padding=1), nn.ReLU(),
            ResidualBlock(FEATURES), ResidualBlock(FEATURES),
        )  # fmt: skip
        self.grid = nn.Sequential(
            nn.Conv2d(FEATURES, GRID_FEATURES, 3, padding=1), nn.ReLU(),
            ResidualBlock(GRID_FEATURES), ResidualBlock(GRID_FEATURES), ResidualBlock(GRID_FEATURES),
        )  # fmt: skip
        self.v_head = nn.Conv2d(GRID_FEATURES, MAX_RANK, 1)
        self.u_head = nn.Sequential(
            nn.Linear(2 * GRID_FEATURES, GRID_FEATURES),
            nn.ReLU(),
            nn.Linear(GRID_FEATURES, CONTEXT_TOKENS * MAX_RANK),
        )

    def forward(
        self, target: torch.Tensor, prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, height, width = target.shape
        positions = position_channels(height, width, target.device).to(target.dtype)
        features = self.stem(torch.cat([target, prev, positions.expand(batch, -1, -1, -1)], 1))
        grid = self.grid(resize(features, (CONTEXT_GRID, CONTEXT_GRID)))
        v = self.v_head(grid).flatten(2)  # [B, R, 1024]
        pooled = torch.cat([grid.mean((2, 3)), grid.amax((2, 3))], 1)
        u = self.u_head(pooled).view(batch, CONTEXT_TOKENS, MAX_RANK)
        return u, v


def load_prompt_encoder(path: str | Path = PROMPT_ENCODER_WEIGHTS) -> PromptEncoder:
    """The shipped (or given) prompt encoder weights, float32, eval mode."""
    from engines.errors import WeightsNotFoundError
    from engines.weight_files import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(path, "retrain with scripts/train_nano.py (docs/engines.md)")
    encoder = PromptEncoder()
    encoder.load_state_dict({k: v.float() for k, v in read_state_dict(path).items()}, strict=True)
    return encoder.eval().requires_grad_(False)


def nested_factors(
    u: torch.Tensor, v: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rank-``rank`` level's factors in the stored form: the first ``rank`` columns of U
    (times ``sqrt(rank)``, so that ``U V / sqrt(rank)`` is the sum of the first ``rank`` terms
    whatever the rank) and the first ``rank`` rows of V."""
    if not 1 <= rank <= MAX_RANK:
        raise ValueError(f"the nano prompt encoder serves ranks 1..{MAX_RANK}, not {rank}")
    return u[..., :rank] * math.sqrt(rank), v[..., :rank, :]


class NanoFactorPredictor:
    """Starting factors for the fitting loop (``LevelFitter(predict_factors=...)``): the prompt
    encoder applied to the generator's encoding of the keyframe's frame and the previous latent."""

    def __init__(
        self, generator: Generator, frames: np.ndarray, encoder: PromptEncoder | None = None
    ) -> None:
        self.generator = generator
        self.frames = frames  # uint8 [T, H, W, 3]
        self.encoder = (encoder or load_prompt_encoder()).to(generator.device)

    @torch.no_grad()
    def __call__(
        self, frame: int, prev: torch.Tensor, rank: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.generator.encode(frames_to_tensor(self.frames[frame : frame + 1])).to(
            self.generator.device
        )
        u, v = self.encoder(target, prev.to(target.device).float())
        u, v = nested_factors(u, v, rank)
        return u[0], v[0]


def factor_predictor_for(generator: Generator, frames: np.ndarray) -> NanoFactorPredictor | None:
    """The prompt encoder's predictor when ``generator`` is nano (the only one trained with one)."""
    if generator.variant.family != "nano":
        return None
    return NanoFactorPredictor(generator, frames)
