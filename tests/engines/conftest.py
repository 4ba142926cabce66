"""Fixtures of the engines tests: the stream size and a seeded init latent (chunks: ``prompts.testing``)."""

from __future__ import annotations

import numpy as np

from prompts.stream_model import SD_LATENT

TEST_SIZE = 64  # pixels: the smallest stream size; keeps every test fast on two cores


def init_latent(size: int = TEST_SIZE, seed: int = 1) -> np.ndarray:
    return (
        np.random.RandomState(seed).standard_normal(SD_LATENT.shape(size, size)).astype(np.float32)
    )
