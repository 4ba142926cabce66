"""When a live channel spends less on a level: the degrade/recover rule, apart from scheduling.

Each level has a *degrade step* (0: the preset's iteration budgets; step s: the budgets divided
by 2**s, down to ``MAX_DEGRADE_STEPS``). A result that arrives more than ``degrade_at`` of the
deadline after its segment's last frame raises the level's step by one, one within
``recover_at`` lowers it by one, and a gap raises it by one. Pure: lags come in as numbers,
changes go out as values; ``authoring.live.channel`` reports them and fits with ``options_for``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

MAX_DEGRADE_STEPS = 3  # budgets go down to 1/8


@dataclass(frozen=True)
class StepChange:
    """A level's new degrade step and why it moved."""

    level_id: int
    step: int
    why: str

    @property
    def budget_share(self) -> str:
        """The share of the budgets the level fits with now, e.g. ``1/2``."""
        return f"1/{2**self.step}"


class DegradePolicy:
    """The degrade step of each level of a channel (module docstring)."""

    def __init__(
        self, levels: int, *, max_latency_s: float, degrade_at: float, recover_at: float
    ) -> None:
        self.max_latency_s = max_latency_s
        self.degrade_at = degrade_at
        self.recover_at = recover_at
        self.steps = [0] * levels

    def on_result(self, level_id: int, lag_s: float) -> StepChange | None:
        """A fit of the level arrived ``lag_s`` after its segment's last frame."""
        why = f"results {lag_s:.1f} s after capture"
        if lag_s > self.degrade_at * self.max_latency_s:
            return self._move(level_id, +1, why)
        if lag_s < self.recover_at * self.max_latency_s:
            return self._move(level_id, -1, why)
        return None

    def on_gap(self, level_id: int, segment_index: int) -> StepChange | None:
        """A segment of the level became a gap."""
        return self._move(level_id, +1, f"segment {segment_index} became a gap")

    def options_for(self, options: Any, level_id: int) -> Any:
        """``options`` (an ``authoring.build.FitOptions``) with the level's budgets."""
        step = self.steps[level_id]
        if not step:
            return options
        preset = options.preset
        preset = preset.with_budgets(
            max(1, preset.first_iterations >> step), max(1, preset.later_iterations >> step)
        )
        return replace(options, preset=preset)

    def _move(self, level_id: int, change: int, why: str) -> StepChange | None:
        step = min(MAX_DEGRADE_STEPS, max(0, self.steps[level_id] + change))
        if step == self.steps[level_id]:
            return None
        self.steps[level_id] = step
        return StepChange(level_id, step, why)
