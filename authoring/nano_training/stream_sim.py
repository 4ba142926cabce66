"""The stream model of docs/architecture.md as one differentiable pass, for training and checks.

Keyframes every ``interval`` frames get factors from the prompt encoder (8-bit fake-quantised,
nested rank), frames between keyframes interpolate the factors, a group ``[p_k, p_{k+1})``
shares one previous latent (the init latent at a chunk start, else the x0 of the frame just
before the group), and the nano UNet and decoder turn each frame's context into pixels. This
is what the fitting loop and the stream decoder do, batched over clips and written so that
gradients reach every network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from authoring.nano_prompt_encoder import PromptEncoder, nested_factors
from engines.nano import NanoDecoder, NanoUNet
from prompts.keyframe import compose_context
from prompts.quant import fake_quantize


@dataclass
class SimulatedStream:
    """What one pass produced, frame-aligned with the input latents."""

    x0: torch.Tensor  # [B, T, 4, h, w]
    images: torch.Tensor  # [B, T, 3, H, W]


def keyframe_factors(
    encoder: PromptEncoder, target: torch.Tensor, prev: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantised rank-``rank`` factors of a batch of keyframes."""
    u, v = nested_factors(*encoder(target, prev), rank)
    return fake_quantize(u, dims=(1, 2)), fake_quantize(v, dims=(1, 2))  # per keyframe


def interpolated_contexts(
    first: tuple[torch.Tensor, torch.Tensor],
    second: tuple[torch.Tensor, torch.Tensor],
    interval: int,
) -> torch.Tensor:
    """Contexts ``[B, interval, 77, 1024]`` of frames ``p_k + s`` for s = 0 .. interval-1."""
    s = (
        torch.arange(interval, device=first[0].device, dtype=first[0].dtype).view(1, interval, 1, 1)
        / interval
    )
    u = (1 - s) * first[0].unsqueeze(1) + s * second[0].unsqueeze(1)
    v = (1 - s) * first[1].unsqueeze(1) + s * second[1].unsqueeze(1)
    return compose_context(u, v)


def simulate_stream(
    unet: NanoUNet,
    decoder: NanoDecoder,
    encoder: PromptEncoder,
    latents: torch.Tensor,
    init: torch.Tensor,
    *,
    rank: int,
    interval: int,
    chunk_frames: int | None = None,
) -> SimulatedStream:
    """Generate frames ``0 .. T-1`` of clips whose target latents are ``latents [B, T, 4, h, w]``.

    ``T - 1`` must be a multiple of ``interval``; ``chunk_frames`` (a multiple of ``interval``)
    resets the previous latent to ``init`` at every chunk start (None: one chunk).
    """
    batch, frames = latents.shape[:2]
    if (frames - 1) % interval:
        raise ValueError(f"{frames} frames do not end on a keyframe of interval {interval}")
    if chunk_frames is not None and chunk_frames % interval:
        raise ValueError(f"chunk length {chunk_frames} is not a multiple of interval {interval}")
    prev = init
    keyframe = keyframe_factors(encoder, latents[:, 0], prev, rank)
    x0s, images = [], []
    for start in range(0, frames - 1, interval):
        end = start + interval
        following = keyframe_factors(encoder, latents[:, end], prev, rank)
        contexts = interpolated_contexts(keyframe, following, interval).flatten(0, 1)
        group_prev = prev.unsqueeze(1).expand(-1, interval, -1, -1, -1).flatten(0, 1)
        x0 = unet.predict_x0(group_prev, contexts)
        x0s.append(x0.view(batch, interval, *x0.shape[1:]))
        image = decoder(x0)
        images.append(image.view(batch, interval, *image.shape[1:]))
        keyframe = following
        starts_chunk = chunk_frames is not None and end % chunk_frames == 0
        prev = init if starts_chunk else x0s[-1][:, -1]
    last = unet.predict_x0(prev, compose_context(*keyframe))
    x0s.append(last.unsqueeze(1))
    images.append(decoder(last).unsqueeze(1))
    return SimulatedStream(torch.cat(x0s, 1), torch.cat(images, 1))
