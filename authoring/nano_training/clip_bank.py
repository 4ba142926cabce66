"""The nano training's examples: the training clips held on the device as uint8, and the drawing of
a batch from them (random crops, flips, time reversal, frame strides, colour gains, and each
clip's init frame from ``INIT_SOURCES``)."""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from authoring.source import frames_to_tensor

# Where a clip's init latent comes from: (probability, source). "start": its own first frame (a
# stream's first chunk); "same clip": another frame of the clip (a later chunk); "other clip":
# a frame of another clip (a later chunk after a cut). Every chunk of a real stream starts from
# the stream's first frame, so most chunks start far from what they show.
INIT_SOURCES = ((0.15, "start"), (0.35, "same clip"), (0.50, "other clip"))
COLOUR_GAIN = 0.15  # per-channel gains drawn from 1 +- this (colour augmentation)


class ClipBank:
    """Training clips as uint8 tensors on the device, and the sampling of training examples."""

    def __init__(
        self, clips: dict[str, np.ndarray], device: torch.device, rng: random.Random
    ) -> None:
        self.clips = [torch.from_numpy(np.ascontiguousarray(f)).to(device) for f in clips.values()]
        self.names = list(clips)
        self.rng = rng

    def sample(self, batch: int, length: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(frames ``[B, length, 3, size, size]``, init frames ``[B, 3, size, size]``) in [-1, 1]."""
        clips, inits = [], []
        for _ in range(batch):
            stride = 2 if self.rng.random() < 0.25 else 1
            candidates = [c for c in self.clips if len(c) >= (length - 1) * stride + 1]
            if not candidates:
                stride, candidates = 1, [c for c in self.clips if len(c) >= length]
            # Clips are drawn by the square root of their length: long clips do not drown short ones.
            clip = self.rng.choices(candidates, weights=[math.sqrt(len(c)) for c in candidates])[0]
            start = self.rng.randrange(len(clip) - (length - 1) * stride)
            indices = torch.arange(length, device=clip.device) * stride + start
            if self.rng.random() < 0.5:
                indices = indices.flip(0)  # played backwards
            init_clip, init_index = self._init_frame(clip, int(indices[0]))
            flip = self.rng.random() < 0.5
            gains = torch.tensor(
                [1 + self.rng.uniform(-COLOUR_GAIN, COLOUR_GAIN) for _ in range(3)],
                device=clip.device,
            ).view(1, 3, 1, 1)
            clips.append(self._cut(clip[indices], *self._corner(clip, size), size, flip, gains))
            init = init_clip[init_index : init_index + 1]
            inits.append(self._cut(init, *self._corner(init_clip, size), size, flip, gains)[0])
        return torch.stack(clips), torch.stack(inits)

    def _init_frame(self, clip: torch.Tensor, first: int) -> tuple[torch.Tensor, int]:
        draw, source = self.rng.random(), INIT_SOURCES[-1][1]
        for probability, name in INIT_SOURCES:
            if draw < probability:
                source = name
                break
            draw -= probability
        if source == "start":
            return clip, first
        if source == "same clip":
            return clip, self.rng.randrange(len(clip))
        other = self.rng.choice(self.clips)
        return other, self.rng.randrange(len(other))

    def _corner(self, clip: torch.Tensor, size: int) -> tuple[int, int]:
        """(top, left) of a random ``size`` square inside the clip's frames."""
        return self.rng.randrange(clip.shape[1] - size + 1), self.rng.randrange(
            clip.shape[2] - size + 1
        )

    @staticmethod
    def _cut(
        frames: torch.Tensor, top: int, left: int, size: int, flip: bool, gains: torch.Tensor
    ) -> torch.Tensor:
        cut = frames_to_tensor(frames[:, top : top + size, left : left + size])
        cut = ((cut + 1) * gains - 1).clamp(-1, 1)
        return cut.flip(-1) if flip else cut
