"""The live channel's degrade/recover rule, on numbers alone (no feed, no runner)."""

from __future__ import annotations

from authoring.build import FitOptions
from authoring.live.policy import MAX_DEGRADE_STEPS, DegradePolicy, StepChange
from authoring.presets import get_preset


def policy() -> DegradePolicy:
    # deadline 60 s: later than 30 s degrades, earlier than 15 s recovers
    return DegradePolicy(2, max_latency_s=60.0, degrade_at=0.5, recover_at=0.25)


def test_late_results_halve_a_level_step_by_step_down_to_an_eighth() -> None:
    rule = policy()
    changes = [rule.on_result(0, 31.0) for _ in range(MAX_DEGRADE_STEPS + 2)]
    assert changes == [
        StepChange(0, 1, "results 31.0 s after capture"),
        StepChange(0, 2, "results 31.0 s after capture"),
        StepChange(0, 3, "results 31.0 s after capture"),
        None,  # already at 1/8
        None,
    ]
    assert changes[2] is not None and changes[2].budget_share == "1/8"
    assert rule.steps == [3, 0]  # the other level is untouched


def test_early_results_recover_and_results_in_between_change_nothing() -> None:
    rule = policy()
    rule.on_result(1, 45.0)
    rule.on_result(1, 45.0)
    assert rule.on_result(1, 20.0) is None  # between recover_at and degrade_at: hold
    assert rule.on_result(1, 30.0) is None  # exactly at degrade_at: not late
    assert rule.on_result(1, 14.9) == StepChange(1, 1, "results 14.9 s after capture")
    assert rule.on_result(1, 1.0) == StepChange(1, 0, "results 1.0 s after capture")
    assert rule.on_result(1, 1.0) is None  # full budget already


def test_a_gap_degrades_one_step() -> None:
    rule = policy()
    assert rule.on_gap(0, 7) == StepChange(0, 1, "segment 7 became a gap")
    assert rule.steps == [1, 0]


def test_options_carry_the_level_budget() -> None:
    rule = policy()
    options = FitOptions(preset=get_preset("demo"))  # 80 / 12 iterations
    assert rule.options_for(options, 0) is options
    rule.on_gap(0, 0)
    halved = rule.options_for(options, 0).preset
    assert (halved.first_iterations, halved.later_iterations) == (40, 6)
    rule.on_gap(0, 1)
    rule.on_gap(0, 2)
    eighth = rule.options_for(options, 0).preset
    assert (eighth.first_iterations, eighth.later_iterations) == (10, 1)
    assert rule.options_for(options, 1) is options
