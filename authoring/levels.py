"""Level specifications (``r8n10`` = rank 8, one keyframe every 10 frames) and chunk length."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

_LEVEL = re.compile(r"^r(\d+)n(\d+)$")
# Fit checkpoints inside a ladder or live channel directory (never served: not a level name);
# removed when the work is complete.
CHECKPOINT_DIR = ".fit"


@dataclass(frozen=True)
class LevelSpec:
    """Rank and keyframe interval of one ladder level; the one home of its name ``r{rank}n{interval}``.

    ``authoring.fit_state.LevelConfig`` extends it with what one level's fit needs besides.
    """

    rank: int
    interval: int

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError("rank must be at least 1")
        if self.interval < 1:
            raise ValueError("interval must be at least 1")

    @property
    def name(self) -> str:
        """Level directory name, e.g. ``r8n10``."""
        return f"r{self.rank}n{self.interval}"

    @property
    def nominal_bytes_per_frame(self) -> float:
        """Raw quantised bytes per frame (orders levels before their real size is known)."""
        return self.rank * (CONTEXT_TOKENS + CONTEXT_DIM) / self.interval


def parse_levels(text: str) -> list[LevelSpec]:
    """``"r2n10,r4n10"`` -> specs sorted by nominal bitrate; ValueError naming a bad entry."""
    specs = []
    for item in (part.strip() for part in text.split(",")):
        match = _LEVEL.match(item)
        if not match:
            raise ValueError(f"level {item!r} is not of the form r<rank>n<interval>, e.g. r8n10")
        try:
            specs.append(LevelSpec(int(match[1]), int(match[2])))
        except ValueError as error:
            raise ValueError(f"level {item}: {error}") from None
    if len({s.name for s in specs}) != len(specs):
        raise ValueError(f"levels {text!r} name a level twice")
    return sorted(specs, key=lambda s: (s.nominal_bytes_per_frame, s.rank))


def chunk_frames_for(levels: Sequence[LevelSpec], fps: float, seconds: float) -> int:
    """The multiple of every level's interval closest to ``seconds`` of video (at least one)."""
    if seconds <= 0:
        raise ValueError(f"chunk length must be positive, got {seconds} s")
    step = math.lcm(*(level.interval for level in levels))
    return max(step, round(seconds * fps / step) * step)
