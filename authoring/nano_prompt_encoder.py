"""An amortised prompt encoder for the nano generator: (target latent, previous latent) -> (U, V).

Trained jointly with the nano generator (scripts/train_nano.py), it predicts the low-rank
factors of a keyframe in one forward pass: ``U`` (77 x R) and ``V`` (R x 1024) for
``R = MAX_RANK``, nested so that the first ``r`` columns of ``U`` and rows of ``V`` serve the
level of rank ``r``. The fitting loop starts from its factors and refines them for a few
steps instead of from random ones (docs/inversion.md, "Warm start for nano").
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from authoring.source import frames_to_tensor
from engines.nano import POSITION_CHANNELS, ResidualBlock, position_channels
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS, LATENT_CHANNELS

MAX_RANK = 16  # the nested factors serve every rank up to this
FEATURES = 96  # width of the encoder's feature map and token features
V_BASIS = 64  # V's rows are combinations of this many learned 1024-vectors
PROMPT_ENCODER_WEIGHTS = Path(__file__).with_name("weights") / "nano_prompt_encoder.safetensors"


class PromptEncoder(nn.Module):
    """Latents ``[B, 4, h, w]`` of the target frame and of the previous frame -> ``U [B, 77, R]``, ``V [B, R, 1024]``."""

    def __init__(self) -> None:
        super().__init__()
        width = FEATURES
        self.stem = nn.Sequential(
            nn.Conv2d(2 * LATENT_CHANNELS + POSITION_CHANNELS, width // 2, 3, padding=1), nn.ReLU(),
            ResidualBlock(width // 2), ResidualBlock(width // 2),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1), nn.ReLU(),
            ResidualBlock(width), ResidualBlock(width),
        )  # fmt: skip
        self.token_queries = nn.Parameter(torch.randn(CONTEXT_TOKENS, width) / width**0.5)
        self.keys = nn.Linear(width, width)
        self.values = nn.Linear(width, width)
        self.u_head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, MAX_RANK))
        self.v_head = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, MAX_RANK * V_BASIS)
        )
        self.v_basis = nn.Parameter(torch.randn(V_BASIS, CONTEXT_DIM) / V_BASIS**0.5)

    def forward(
        self, target: torch.Tensor, prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, height, width = target.shape
        positions = position_channels(height, width, target.device).expand(batch, -1, -1, -1)
        features = (
            self.stem(torch.cat([target, prev, positions], 1)).flatten(2).transpose(1, 2)
        )  # [B, n, C]
        tokens = F.scaled_dot_product_attention(
            self.token_queries.expand(batch, -1, -1), self.keys(features), self.values(features)
        )
        u = self.u_head(tokens + self.token_queries)
        coefficients = self.v_head(features.mean(1)).view(batch, MAX_RANK, V_BASIS)
        return u, coefficients @ self.v_basis


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
    """The rank-``rank`` level's factors: the first ``rank`` columns of U and rows of V."""
    if not 1 <= rank <= MAX_RANK:
        raise ValueError(f"the nano prompt encoder serves ranks 1..{MAX_RANK}, not {rank}")
    return u[..., :rank], v[..., :rank, :]


class NanoFactorPredictor:
    """Starting factors for the fitting loop (``LevelFitter(predict_factors=...)``): the prompt
    encoder applied to the generator's encoding of the keyframe's frame and the previous latent."""

    def __init__(self, generator, frames, encoder: PromptEncoder | None = None) -> None:
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
        u, v = nested_factors(*self.encoder(target, prev.to(target.device).float()), rank)
        return u[0], v[0]


def factor_predictor_for(generator, frames) -> NanoFactorPredictor | None:
    """The prompt encoder's predictor when ``generator`` is nano (the only one trained with one)."""
    if generator.variant.family != "nano":
        return None
    return NanoFactorPredictor(generator, frames)
