"""Inversion: fit low-rank prompts to video and publish them as chunked prompt ladders.

Public API (imported lazily so that ``promptus --help`` does not load torch)::

    build_ladder(source, out, generator=..., levels=..., options=FitOptions(preset=...))
    build_demo_ladder(frames, out_dir, fps=30, generator="tiny")   # seconds, for `promptus demo`
    planted_clip(generator, size, frames) -> (frames, init)       # a clip tiny generators can fit
    load_source(path, size, max_frames=None) -> SourceVideo
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_ladder": "prompts.inversion.build",
    "FitOptions": "prompts.inversion.build",
    "build_demo_ladder": "prompts.inversion.demo",
    "planted_clip": "prompts.inversion.demo",
    "load_source": "prompts.inversion.source",
    "SourceVideo": "prompts.inversion.source",
    "LevelFitter": "prompts.inversion.fit",
    "LevelConfig": "prompts.inversion.fit",
    "get_preset": "prompts.inversion.presets",
    "parse_levels": "prompts.inversion.levels",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prompts.inversion' has no attribute {name!r}")


__all__ = sorted(_LAZY)
