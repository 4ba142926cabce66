"""The stream's initial latent: the generator's TAESD encoding of frame 0 (as the reference does)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def initial_latent(generator: Any, frame: np.ndarray) -> np.ndarray:
    """``float32 [1, 4, H/8, W/8]`` latent of a ``uint8 [H, W, 3]`` frame.

    Without encoder weights (a ``--taesd`` holding only the decoder) the stream starts from a
    zero latent instead; that is a valid stream, only the first frames' fit starts farther off.
    """
    import torch

    from engines import WeightsNotFoundError

    image = (
        torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    )
    try:
        latent = generator.encode(image)
    except WeightsNotFoundError:
        height, width = frame.shape[:2]
        print(
            "note: no TAESD encoder weights; the stream starts from a zero latent", file=sys.stderr
        )
        return np.zeros((1, 4, height // 8, width // 8), np.float32)
    return latent.detach().float().cpu().numpy().astype(np.float32)
