"""``promptus eval``'s report warns about generators with seeded random weights, and only those."""

from __future__ import annotations

from engines.variants import VARIANTS
from promptus.commands.eval import seeded_weights_note


def test_only_seeded_generators_get_the_meaningless_figures_note() -> None:
    warned = {name for name in VARIANTS if seeded_weights_note(name) is not None}
    # nano needs no --weights either, but its weights are trained and ship with the project
    assert warned == {"tiny", "tiny-taesd"}
    note = seeded_weights_note("tiny")
    assert note is not None and "measure nothing" in note and "(tiny)" in note
