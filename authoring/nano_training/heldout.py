"""How a nano training run scores on held-out footage: PSNRs of a clip streamed in the demo's
chunks (each log line's ``heldout_*`` columns) and a sheet of sample frames.

Every score streams the clip from its frame 0's latent, as a demo stream starts: the autoencoder
alone (its ceiling), the start latent redrawn for every frame (the floor a prompt must beat), and
the prompt encoder's factors, with no refinement, at each rank of ``EVAL_RANKS``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from authoring.nano_training.stream_sim import simulate_stream
from authoring.nano_training.train import NanoTrainer, rounded_psnr

EVAL_RANKS = (1, 2, 4, 8)
EVAL_INTERVAL = 10
EVAL_CHUNK_FRAMES = 20  # the demo's 1 s chunks at 24 fps (promptus/commands/demo.py)
SAMPLE_FRAMES = (0, 15, 45, 89)  # the columns of a sample sheet


@torch.no_grad()
def evaluate_clip(trainer: NanoTrainer, frames: torch.Tensor) -> dict[str, float]:
    """Held-out PSNRs (dB) of one clip ``[T, 3, S, S]`` in [-1, 1] streamed from its frame 0
    in the demo's chunks: the autoencoder alone, the start latent redrawn for every frame,
    and the prompt encoder's factors (no refinement) at each rank of ``EVAL_RANKS``."""
    scores = {"autoencoder": _psnr_of(_reconstruct(trainer, frames), frames)}
    scores["start_redrawn"] = _psnr_of(_reconstruct(trainer, frames[:1]).expand_as(frames), frames)
    for rank in EVAL_RANKS:
        scores[f"r{rank}n{EVAL_INTERVAL}"] = _psnr_of(
            generated_clip(trainer, frames, rank=rank), frames
        )
    return scores


@torch.no_grad()
def generated_clip(
    trainer: NanoTrainer,
    frames: torch.Tensor,
    *,
    rank: int = 8,
    interval: int = EVAL_INTERVAL,
    chunk_frames: int = EVAL_CHUNK_FRAMES,
) -> torch.Tensor:
    """The frames ``[T, 3, S, S]`` regenerated from the prompt encoder's factors, streamed
    from frame 0's latent (the init latent) with a chunk reset every ``chunk_frames``."""
    encoder = trainer.autoencoder.encoder
    assert encoder is not None
    with trainer.evaluating():
        latents = encoder(trainer.layout(frames))[None]
        stream = simulate_stream(trainer.unet, trainer.autoencoder.decoder, trainer.prompts, latents, latents[:, 0],
                                 ranks=rank, interval=interval, chunk_frames=chunk_frames)  # fmt: skip
    return stream.images[0].float()


def write_samples(trainer: NanoTrainer, frames: torch.Tensor, path: Path) -> None:
    """A PNG of held-out frames ``SAMPLE_FRAMES``: the source above, the stream regenerated at
    r8n10 below."""
    from PIL import Image

    images = generated_clip(trainer, frames)
    picks = [i for i in SAMPLE_FRAMES if i < len(frames)]

    def to_row(t: torch.Tensor) -> np.ndarray:
        return np.concatenate(
            [
                ((t[i].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
                for i in picks
            ],
            1,
        )

    Image.fromarray(np.concatenate([to_row(frames), to_row(images)], 0)).save(path)


def _reconstruct(trainer: NanoTrainer, frames: torch.Tensor) -> torch.Tensor:
    encoder = trainer.autoencoder.encoder
    assert encoder is not None
    with trainer.evaluating():
        return trainer.autoencoder.decoder(encoder(trainer.layout(frames))).float()


def _psnr_of(images: torch.Tensor, frames: torch.Tensor) -> float:
    return rounded_psnr(F.mse_loss(images.clamp(-1, 1), frames).item())
