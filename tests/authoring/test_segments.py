"""Closed segments: how levels are cut, and that a segmented ladder plays like any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from authoring.build import FitOptions, build_ladder
from authoring.catalog import CatalogSettings, TitleJob, build_titles
from authoring.levels import LevelSpec, parse_levels
from authoring.presets import get_preset
from authoring.runner import LocalRunner, TaskResources
from authoring.segments import OPEN, cut_segments, segment_chunks_for
from authoring.source import load_source
from authoring.tasks import GeneratorSpec
from prompts.chunk import make_prefix, parse_chunk
from prompts.ladder import Ladder
from tests.authoring.titles import FPS, SIZE, tree_bytes, write_title

OPTIONS = FitOptions(preset=get_preset("demo").with_budgets(4, 2))


def test_cut_segments_covers_every_chunk_once() -> None:
    levels = [LevelSpec(1, 5), LevelSpec(2, 10)]
    segments = cut_segments("t", 95, 10, levels, segment_chunks=3)
    for level_id, level in enumerate(levels):
        mine = [s for s in segments if s.level_id == level_id]
        assert all(s.level == level for s in mine)
        assert [(s.first_chunk, s.end_chunk) for s in mine] == [(0, 3), (3, 6), (6, 10)]
        assert [s.index for s in mine] == [0, 1, 2]
        assert mine[0].fit_end == 31 and mine[-1].fit_end == 95 == mine[-1].end_frame
    # A tail of no more than one interval joins the segment before it (levels may differ).
    short = cut_segments("t", 62, 10, [LevelSpec(1, 5), LevelSpec(1, 1)], segment_chunks=2)
    assert [(s.level.name, s.first_chunk, s.end_chunk) for s in short] == [
        ("r1n5", 0, 2), ("r1n5", 2, 4), ("r1n5", 4, 7),
        ("r1n1", 0, 2), ("r1n1", 2, 4), ("r1n1", 4, 6), ("r1n1", 6, 7),
    ]  # fmt: skip
    assert [(s.first_chunk, s.end_chunk) for s in cut_segments("t", 95, 10, levels, OPEN)][:1] == [
        (0, 10)
    ]
    assert segment_chunks_for(0, 30, 60) == OPEN
    assert segment_chunks_for(10, 30, 60) == 5
    assert segment_chunks_for(0.5, 30, 60) == 1


def _build(source: Path, out: Path, segment_seconds: float) -> Ladder:
    settings = CatalogSettings(
        levels=tuple(parse_levels("r1n5")), options=OPTIONS, size=SIZE, fps=FPS,
        chunk_seconds=1.0, segment_seconds=segment_seconds,
    )  # fmt: skip
    (report,) = build_titles(
        [TitleJob("t", source, out)], settings, runner=LocalRunner(),
        loader=GeneratorSpec("tiny"), resources=TaskResources(cpus=1), progress=False,
    )  # fmt: skip
    assert report.ok, report.error
    return Ladder(out)


@pytest.mark.slow
def test_segmented_ladder_decodes_cold_as_in_sequence(tiny_generator, tmp_path: Path) -> None:
    source = write_title(tiny_generator, tmp_path / "title", frames=20)
    ladder = _build(source, tmp_path / "closed", segment_seconds=1.0)
    level = ladder.manifest.level(0)
    chunks = [parse_chunk(ladder.chunk_bytes(0, i)) for i in range(len(level.chunks))]
    assert [c.closed for c in chunks] == [False, True]
    assert not (ladder.path / ".fit").exists()

    def stream():  # type: ignore[no-untyped-def]
        return tiny_generator.open_stream(width=SIZE, height=SIZE, init_latent=ladder.init_state())

    in_sequence = stream()
    sequential = [in_sequence.decode_chunk(c) for c in chunks]
    for index, chunk in enumerate(chunks):
        prefix = None if chunk.closed or index == 0 else make_prefix(chunks[index - 1])
        assert np.array_equal(stream().decode_chunk(chunk, prefix=prefix), sequential[index])
    # A closed chunk needs no prefix even where one is sent (the daemon after a switch).
    assert np.array_equal(stream().decode_chunk(chunks[1], make_prefix(chunks[0])), sequential[1])
    # Closing costs a keyframe per seam: the closed chunks hold one keyframe more.
    assert [len(c.keyframes) for c in chunks] == [3, 3]  # 0 5 10 | 10 15 19


@pytest.mark.slow
def test_one_open_segment_is_todays_ladder(tiny_generator, tmp_path: Path) -> None:
    source = write_title(tiny_generator, tmp_path / "title", frames=20)
    _build(source, tmp_path / "open", segment_seconds=0)
    video = load_source(source, SIZE, fps=FPS)
    build_ladder(
        video, tmp_path / "single", generator=tiny_generator, levels=parse_levels("r1n5"),
        options=OPTIONS, chunk_seconds=1.0, progress=False,
    )  # fmt: skip
    assert tree_bytes(tmp_path / "open") == tree_bytes(tmp_path / "single")
