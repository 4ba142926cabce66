"""The shipped fixtures of ``prompts.testing`` are what they claim: valid ladders and chunks,
and an init state the parser refuses as a deflate bomb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prompts.chunk import encode_chunk, parse_chunk
from prompts.init_state import InitStateError, parse_init_state
from prompts.manifest import load_manifest
from prompts.testing import (
    GENERATOR_NAME,
    LEVEL_SEED_STEP,
    inflating_init_state,
    level_chunks,
    one_group_chunk,
    seeded_latent,
    write_ladder,
)


def test_a_written_ladder_holds_each_level_s_seeded_chunks(tmp_path: Path) -> None:
    levels = [("r2n5", 2, 5), ("r4n5", 4, 5)]
    ladder = write_ladder(
        tmp_path, "tiny:1", levels=levels, frames=21, fps=10.0, size=64, chunk_frames=10,
        seed=3, init_seed=4, qualities=[{"psnr": 20.0}, {"psnr": 24.0}],
    )  # fmt: skip
    manifest = load_manifest(tmp_path)
    assert manifest.stream.generator_name == GENERATOR_NAME and not manifest.stream.live
    assert manifest.chunk_count == 3
    for level_id, (_, rank, interval) in enumerate(levels):
        expected = level_chunks(
            "tiny:1", frames=21, interval=interval, chunk_frames=10, rank=rank, level=level_id,
            seed=3 + LEVEL_SEED_STEP * level_id,
        )  # fmt: skip
        for index, chunk in enumerate(expected):
            assert ladder.chunk_path(level_id, index).read_bytes() == encode_chunk(chunk)
    init = parse_init_state((tmp_path / "init.bin").read_bytes())
    assert np.array_equal(init, seeded_latent(64, 4)) and init.shape == (1, 4, 8, 8)


def test_one_group_chunk_has_keyframes_only_at_its_ends() -> None:
    chunk = parse_chunk(one_group_chunk("tiny:1", 12, rank=2))
    assert [k.frame for k in chunk.keyframes] == [0, 12] and chunk.interval == 12


def test_the_inflating_init_state_is_refused_once_it_outgrows_its_shape() -> None:
    with pytest.raises(InitStateError, match="inflates to more than the header says"):
        parse_init_state(inflating_init_state())
