"""The availability rules of a `get`, on hand-built manifests (no sockets, no files)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from prompts.manifest import ChunkInfo, LevelInfo, Manifest
from server.availability import available_chunk
from tests.server.conftest import STREAM
from wire.errors import ErrorCode, ProtocolError

AHEAD = 3  # ServerSettings.live_ahead_chunks


def manifest(
    *, live: bool, published: int, window_start: int = 0, gaps: frozenset[int] = frozenset()
) -> Manifest:
    """A stream of 10 chunks and two levels; chunks ``window_start..published-1`` listed."""
    stream = replace(STREAM, frames=10 * STREAM.chunk_frames, live=live)
    levels = tuple(
        LevelInfo(
            id=level,
            name=f"r2n{interval}",
            rank=2,
            interval=interval,
            kbps=10.0,
            chunks=tuple(
                ChunkInfo(index=i, bytes=64 * (i + 1) * (level + 1), keyframes=2, gap=i in gaps)
                for i in range(window_start, published)
            ),
        )
        for level, interval in enumerate((10, 5))
    )
    return Manifest(stream=stream, levels=levels, chunk_count=published, window_start=window_start)


def refusal(manifest: Manifest, level: int, chunk: int) -> ProtocolError:
    with pytest.raises(ProtocolError) as refused:
        available_chunk(manifest, level, chunk, live_ahead_chunks=AHEAD)
    return refused.value


def test_a_published_chunk_gives_its_facts() -> None:
    finished = manifest(live=False, published=10)
    assert available_chunk(finished, 1, 4, live_ahead_chunks=AHEAD) == ChunkInfo(
        index=4, bytes=640, keyframes=2
    )


def test_a_level_past_the_ladder_is_unknown() -> None:
    error = refusal(manifest(live=False, published=10), 2, 0)
    assert error.code is ErrorCode.UNKNOWN_LEVEL
    assert error.message == "level 2 does not exist (levels 0..1)"


def test_a_chunk_past_a_finished_stream_is_unknown() -> None:
    error = refusal(manifest(live=False, published=10), 0, 10)
    assert error.code is ErrorCode.UNKNOWN_CHUNK
    assert error.message == "chunk 10 does not exist (the stream has 10 chunks, 10 published)"


def test_an_unfinished_ladder_that_is_not_live_has_no_chunks_past_its_count() -> None:
    error = refusal(manifest(live=False, published=4), 0, 4)
    assert error.code is ErrorCode.UNKNOWN_CHUNK
    assert error.message == "chunk 4 does not exist (the stream has 10 chunks, 4 published)"


def test_live_just_past_the_edge_is_not_available_yet() -> None:
    live = manifest(live=True, published=4)
    for chunk in (4, 4 + AHEAD - 1):
        error = refusal(live, 0, chunk)
        assert error.code is ErrorCode.NOT_AVAILABLE
        assert error.message == f"chunk {chunk} is not published yet (live edge: 4 chunks); retry"


def test_live_far_past_the_edge_is_beyond_it() -> None:
    error = refusal(manifest(live=True, published=4), 0, 4 + AHEAD)
    assert error.code is ErrorCode.BEYOND_LIVE_EDGE
    assert error.message == "chunk 7 is far beyond the live edge (4 chunks)"


def test_live_past_the_whole_stream_is_unknown_not_beyond_the_edge() -> None:
    error = refusal(manifest(live=True, published=4), 0, 10)
    assert error.code is ErrorCode.UNKNOWN_CHUNK
    assert error.message == "chunk 10 does not exist (the stream has 10 chunks, 4 published)"


def test_near_the_end_of_a_live_stream_not_available_wins_over_unknown() -> None:
    error = refusal(manifest(live=True, published=9), 0, 10)
    assert error.code is ErrorCode.NOT_AVAILABLE


def test_before_the_window_is_outside_it() -> None:
    error = refusal(manifest(live=True, published=8, window_start=3), 1, 2)
    assert error.code is ErrorCode.OUTSIDE_WINDOW
    assert error.message == (
        "chunk 2 has left the live window (it starts at chunk 3; the live edge is 8)"
    )


def test_the_first_chunk_of_the_window_is_served() -> None:
    windowed = manifest(live=True, published=8, window_start=3)
    assert available_chunk(windowed, 0, 3, live_ahead_chunks=AHEAD).index == 3


def test_a_gap_is_refused_per_level() -> None:
    error = refusal(manifest(live=True, published=6, gaps=frozenset({5})), 1, 5)
    assert error.code is ErrorCode.GAP
    assert error.message == "chunk 5 of level 1 is a gap in this live channel; skip it"


def test_the_level_is_checked_before_the_chunk() -> None:
    assert refusal(manifest(live=True, published=4), 5, 99).code is ErrorCode.UNKNOWN_LEVEL
