"""A procedural sky clip (gradient sky, a sun crossing it, drifting clouds) for runs with no footage."""

from __future__ import annotations

import math
from pathlib import Path


def render_clip(folder: Path, frames: int, size: int) -> None:
    """Writes a procedural sky clip as PNG frames: a gradient sky, a sun crossing it, drifting clouds."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for index in range(frames):
        t = index / frames  # 0..1 over the clip
        sky = np.stack([0.25 + 0.35 * y, 0.45 + 0.35 * y, 0.85 + 0.1 * y], axis=-1)
        sun_x, sun_y = 0.15 + 0.7 * t, 0.55 - 0.35 * math.sin(math.pi * t)
        sun = np.exp(-((x - sun_x) ** 2 + (y - sun_y) ** 2) / 0.006)[..., None]
        clouds = 0.5 + 0.25 * np.sin(2 * math.pi * (2 * x + 0.6 * t)) * np.sin(
            2 * math.pi * (3 * y + 0.2 * x - 0.4 * t)
        )
        cloud_mask = np.clip((clouds - 0.55) * 4, 0, 1)[..., None] * (y < 0.7)[..., None]
        ground = (y > 0.78 + 0.04 * np.sin(2 * math.pi * (x + 0.1 * t)))[..., None]
        image = sky * (1 - sun) + np.array([1.0, 0.9, 0.5]) * sun
        image = image * (1 - cloud_mask) + 0.95 * cloud_mask
        image = image * (1 - ground) + np.array([0.2, 0.45, 0.2]) * ground
        pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")
