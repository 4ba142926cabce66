"""Authoring: fit low-rank prompts to video (inversion), publish them as chunked prompt ladders,
and rate them against classic codecs.

Public API (imported lazily so that ``promptus --help`` does not load torch)::

    build_ladder(source, out, generator=..., levels=..., options=FitOptions(preset=...))
    planted_clip(generator, size, frames) -> (frames, init)       # a clip tiny generators can fit
    load_source(path, size, max_frames=None) -> SourceVideo
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_ladder": "authoring.build",
    "FitOptions": "authoring.build",
    "planted_clip": "authoring.planted",
    "load_source": "authoring.source",
    "SourceVideo": "authoring.source",
    "LevelFitter": "authoring.fit",
    "LevelConfig": "authoring.fit_state",
    "get_preset": "authoring.presets",
    "parse_levels": "authoring.levels",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'authoring' has no attribute {name!r}")


__all__ = sorted(_LAZY)
