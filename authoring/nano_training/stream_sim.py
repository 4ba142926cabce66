"""The stream model of docs/architecture.md as one differentiable pass, for training and checks.

Keyframes every ``interval`` frames get factors from the prompt encoder (8-bit fake-quantised,
nested rank), frames between keyframes interpolate the factors, a group ``[p_k, p_{k+1})``
shares one previous latent (the init latent at a chunk start, else the x0 of the frame just
before the group), and the nano UNet and decoder turn each frame's context into pixels. This
is what the fitting loop and the stream decoder do, batched over clips and written so that
gradients reach every network.

Each clip of a batch may have its own rank: its factors are the encoder's full nested factors
with the columns (rows) past its rank set to zero, quantised over its own ``r`` columns only, so
every clip's contexts equal those of its ``r``-column factors exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from authoring.nano_prompt_encoder import MAX_RANK, PromptEncoder
from engines.nano import NanoUNet
from prompts.quant import fake_quantize


@dataclass
class SimulatedStream:
    """What one pass produced, frame-aligned with the input latents."""

    x0: torch.Tensor  # [B, T, C, h, w]
    images: torch.Tensor  # [B, T, 3, H, W]


@dataclass(frozen=True)
class Factors:
    """Fake-quantised keyframe factors of a batch, zero past each clip's rank:
    ``u [B, 77, MAX_RANK]``, ``v [B, MAX_RANK, 1024]``."""

    u: torch.Tensor
    v: torch.Tensor


def rank_tensor(ranks: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """Each clip's rank as a ``[B]`` long tensor (an int serves the whole batch)."""
    if isinstance(ranks, int):
        return torch.full((batch,), ranks, dtype=torch.long, device=device)
    return ranks.to(device=device, dtype=torch.long)


def _quantise_within(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fake quantisation of each clip's ``values`` over its masked entries' own range; zero
    outside the mask."""
    dims = tuple(range(1, values.dim()))
    low = torch.where(mask, values, torch.inf).amin(dim=dims, keepdim=True)
    high = torch.where(mask, values, -torch.inf).amax(dim=dims, keepdim=True)
    return fake_quantize(values, low, high) * mask


def keyframe_factors(
    encoder: PromptEncoder, target: torch.Tensor, prev: torch.Tensor, ranks: torch.Tensor
) -> Factors:
    """Fake-quantised factors of a batch of keyframes, clip ``i`` at rank ``ranks[i]``."""
    u, v = encoder(target, prev)
    columns = torch.arange(MAX_RANK, device=u.device)
    keep = columns[None, :] < ranks[:, None]  # [B, R]
    # The stored U of rank r carries sqrt(r) (authoring.nano_prompt_encoder.nested_factors).
    u = u.float() * ranks.float().sqrt().view(-1, 1, 1)
    return Factors(
        _quantise_within(u, keep[:, None, :].expand_as(u)),
        _quantise_within(v.float(), keep[:, :, None].expand_as(v)),
    )


def interpolated_contexts(
    first: Factors, second: Factors, interval: int, ranks: torch.Tensor
) -> torch.Tensor:
    """Contexts ``[B, interval, 77, 1024]`` of frames ``p_k + s`` for s = 0 .. interval-1:
    ``U(s) V(s) / sqrt(r)`` with U and V interpolated linearly between the keyframes."""
    s = torch.arange(interval, device=first.u.device, dtype=first.u.dtype).view(1, interval, 1, 1)
    s = s / interval
    u = (1 - s) * first.u.unsqueeze(1) + s * second.u.unsqueeze(1)
    v = (1 - s) * first.v.unsqueeze(1) + s * second.v.unsqueeze(1)
    return compose(u, v, ranks)


def compose(u: torch.Tensor, v: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """``U V / sqrt(r)`` with each clip's own rank (``u`` and ``v`` zero past it), for factors
    batched over clips on the first axis (and over anything between it and the matrices)."""
    scale = ranks.float().sqrt().view(-1, *([1] * (u.dim() - 1)))
    return (u @ v) / scale


def simulate_stream(
    unet: NanoUNet,
    decoder: Callable[[torch.Tensor], torch.Tensor],
    encoder: PromptEncoder,
    latents: torch.Tensor,
    init: torch.Tensor,
    *,
    ranks: int | torch.Tensor,
    interval: int,
    chunk_frames: int | None = None,
) -> SimulatedStream:
    """Generate frames ``0 .. T-1`` of clips whose target latents are ``latents [B, T, C, h, w]``.

    ``T - 1`` must be a multiple of ``interval``; ``chunk_frames`` (a multiple of ``interval``)
    resets the previous latent to ``init`` at every chunk start (None: one chunk). The prompt
    encoder sees its inputs detached: it learns to describe, not to reshape the latent space.
    """
    batch, frames = latents.shape[:2]
    if (frames - 1) % interval:
        raise ValueError(f"{frames} frames do not end on a keyframe of interval {interval}")
    if chunk_frames is not None and chunk_frames % interval:
        raise ValueError(f"chunk length {chunk_frames} is not a multiple of interval {interval}")
    ranks = rank_tensor(ranks, batch, latents.device)
    targets = latents.detach()
    prev = init
    keyframe = keyframe_factors(encoder, targets[:, 0], prev.detach(), ranks)
    x0s, images = [], []
    for start in range(0, frames - 1, interval):
        end = start + interval
        following = keyframe_factors(encoder, targets[:, end], prev.detach(), ranks)
        contexts = interpolated_contexts(keyframe, following, interval, ranks).flatten(0, 1)
        group_prev = prev.unsqueeze(1).expand(-1, interval, -1, -1, -1).flatten(0, 1)
        x0 = unet.predict_x0(group_prev, contexts)
        x0s.append(x0.view(batch, interval, *x0.shape[1:]))
        image = decoder(x0)
        images.append(image.view(batch, interval, *image.shape[1:]))
        keyframe = following
        starts_chunk = chunk_frames is not None and end % chunk_frames == 0
        prev = init if starts_chunk else x0s[-1][:, -1]
    last = unet.predict_x0(prev, compose(keyframe.u, keyframe.v, ranks))
    x0s.append(last.unsqueeze(1))
    images.append(decoder(last).unsqueeze(1))
    return SimulatedStream(torch.cat(x0s, 1), torch.cat(images, 1))


def rank_context(factors: Factors, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``rank``-column factors a clip of that rank stores (drop the zero columns)."""
    if not 1 <= rank <= MAX_RANK:
        raise ValueError(f"rank {rank} outside 1..{MAX_RANK}")
    return factors.u[..., :rank], factors.v[..., :rank, :]
