"""A live channel end to end: `promptus live` fits a paced frame-folder feed (tiny generator,
CPU) into a growing ladder while `promptus serve` serves it, and a viewer in Debian's Chromium
joins at the live edge, plays several chunks without a stall, reports how far behind live it
plays, and sees the window slide and the feed end. A second test plays across the gaps a live
channel publishes for a segment it could not fit in time: one level's, and every level's."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from pathlib import Path

import pytest

from authoring.procedural_clip import render_clip
from prompts.ladder import LadderWriter
from prompts.manifest import ManifestError, StreamInfo, load_manifest
from prompts.testing import GENERATOR_NAME, LEVEL_SEED_STEP, seeded_latent
from tests.prompts.factories import chunk_of, random_keyframe
from tests.web.conftest import Stack
from tests.web.stack import CHUNK_FRAMES, LEVELS, STREAM_FPS, STREAM_SIZE, promptus_child
from tests.web.test_player_e2e import snapshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_CHANNEL = "cam"
LIVE_FPS = 4  # two-second chunks of 8 frames, two per segment: the tiny fit keeps up on two
# busy cores (its cost per task hardly depends on the frames at this size)
FEED_SECONDS = 44
WINDOW_MINUTES = "0.2"  # 12 s: six chunks
JOIN_TIMEOUT_S = 120  # torch import and the first segments on two shared cores


def published(media: Path) -> tuple[int, int, bool]:
    """(chunk_count, window_start, live) of the live channel now; zeros before its manifest."""
    try:
        manifest = load_manifest(media / LIVE_CHANNEL)
    except ManifestError:
        return 0, 0, True
    return manifest.chunk_count, manifest.window_start, manifest.stream.live


def wait_published(media: Path, predicate, timeout_s: float, live) -> tuple[int, int, bool]:  # type: ignore[no-untyped-def]
    """Waits (while `promptus live` runs) until ``predicate(published(media))``."""
    deadline = time.monotonic() + timeout_s
    while not predicate(state := published(media)):
        live.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"live channel state {state}; output:\n{live.output()}")
        time.sleep(0.2)
    return state


def test_a_viewer_joins_a_live_channel_at_its_edge_and_plays_on(  # type: ignore[no-untyped-def]
    page, stack: Stack, tmp_path: Path
) -> None:
    frames = tmp_path / "feed"
    render_clip(frames, FEED_SECONDS * LIVE_FPS, STREAM_SIZE)
    live = promptus_child(
        "live",
        ["live", str(frames), "--channel", LIVE_CHANNEL, "--media", str(stack.media),
         "--levels", "r2n8,r4n8", "--fps", str(LIVE_FPS), "--chunk-seconds", "2",
         "--size", str(STREAM_SIZE), "--generator", "tiny", "--device", "cpu",
         "--cluster", "none", "--preset", "demo", "--iterations", "2,1", "--perceptual", "none",
         "--segment-seconds", "4", "--window-minutes", WINDOW_MINUTES, "--max-latency", "30"],
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        wait_published(stack.media, lambda s: s[0] >= 3, JOIN_TIMEOUT_S, live)
        page.goto(stack.page_url(channel=LIVE_CHANNEL, abr="bba"))
        wait_for(page, "s.startupS !== null", JOIN_TIMEOUT_S)
        joined = snapshot(page)
        edge_at_join = published(stack.media)[0]
        assert joined["live"] is True
        assert joined["chunk"] >= edge_at_join - 5, (joined, edge_at_join)  # near the edge
        # several chunks (2 s each) without a stall, following the edge
        wait_for(page, f"s.currentTime > {joined['currentTime'] + 6}", 60)
        played = snapshot(page)
        assert played["stalls"] == 0, played
        assert played["chunk"] >= joined["chunk"] + 3
        assert 0 < played["behindLiveS"] < 12, played  # within the window, a few chunks behind
        # the window slid while we watched (six chunks kept) and the player stayed inside it
        count, window_start, _ = wait_published(stack.media, lambda s: s[1] > 0, 60, live)
        assert count - window_start == 6
        assert snapshot(page)["chunk"] >= window_start
        # the feed ends: the ladder becomes a finished one and the page learns it
        assert live.wait() == 0, live.output()
        assert published(stack.media)[2] is False
        wait_for(page, "s.live === false", 15)
        output = live.output()
        assert "live latency" in output and "r4n8" in output
    finally:
        live.stop()
    # the page reported its distance to the live edge to the server
    deadline = time.monotonic() + 10
    behind: list[float] = []
    while not behind and time.monotonic() < deadline:
        with sqlite3.connect(f"file:{stack.telemetry}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT r.extra FROM reports r JOIN sessions s ON s.id = r.session_id "
                "WHERE s.channel = ? AND r.extra IS NOT NULL",
                (LIVE_CHANNEL,),
            ).fetchall()
        behind = [json.loads(row[0]).get("behind_live_s") for row in rows]
        behind = [value for value in behind if value is not None]
        time.sleep(0.5)
    assert behind and all(0 <= value < 30 for value in behind), behind


GAPPY_CHANNEL = "gappy"
GAPPY_CHUNKS = 12  # one second each
TOP_LEVEL = len(LEVELS) - 1
LEVEL_GAP = 5  # the top level could not fit this chunk: the player takes the level below
EVERY_LEVEL_GAP = 8  # no level has it: the player skips the second
JOINED_AT = 4  # chunks published before the viewer comes (it starts three behind the edge)


def publish_live_chunk(
    writer: LadderWriter, index: int, gap_levels: set[int], closed: bool
) -> None:
    """Chunk ``index`` of every level, as `promptus live` would publish it: a gap where the level
    missed its deadline, else the fitted chunk (``closed``: the first of a new segment, so it
    holds its own first keyframe and needs nothing from the chunk before)."""
    writer.grow((index + 1) * CHUNK_FRAMES)
    for level_id, (_, rank, interval) in enumerate(LEVELS):
        if level_id in gap_levels:
            writer.append_gap(level_id, index)
            continue
        seed = LEVEL_SEED_STEP * level_id
        chunk = chunk_of(
            index, chunk_frames=CHUNK_FRAMES, interval=interval, rank=rank,
            frames=GAPPY_CHUNKS * CHUNK_FRAMES + 1, level=level_id,
            generator_id=writer.manifest.stream.generator_id, seed=seed,
        )  # fmt: skip
        if closed:
            first = random_keyframe(chunk.frame_start, rank, seed)
            chunk = dataclasses.replace(chunk, keyframes=(first, *chunk.keyframes))
        writer.append_chunk(level_id, chunk, {"psnr": 20.0 + 4 * level_id})


def delivered_levels(telemetry: Path, channel: str) -> dict[int, set[int]]:
    """chunk -> the levels the server delivered it at (acked), from its telemetry database."""
    with sqlite3.connect(f"file:{telemetry}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT chunk, level FROM deliveries WHERE channel = ? AND acked_at IS NOT NULL",
            (channel,),
        ).fetchall()
    levels: dict[int, set[int]] = {}
    for chunk, level in rows:
        levels.setdefault(chunk, set()).add(level)
    return levels


def test_a_live_viewer_plays_across_a_level_gap_and_an_every_level_gap(  # type: ignore[no-untyped-def]
    page, stack: Stack
) -> None:
    stream = StreamInfo(
        fps=STREAM_FPS, width=STREAM_SIZE, height=STREAM_SIZE, frames=1,
        chunk_frames=CHUNK_FRAMES, generator_id=stack.generator_id,
        generator_name=GENERATOR_NAME, live=True,
    )  # fmt: skip
    writer = LadderWriter(stack.media / GAPPY_CHANNEL, stream, LEVELS)
    writer.write_init_state(seeded_latent(STREAM_SIZE, 3))
    before = stack.channel_count()
    for index in range(JOINED_AT):
        publish_live_chunk(writer, index, set(), closed=False)
    deadline = time.monotonic() + 15
    while stack.channel_count() <= before:
        assert time.monotonic() < deadline, "the server did not list the live channel"
        time.sleep(0.05)

    page.goto(stack.page_url(channel=GAPPY_CHANNEL, abr="bba"))
    wait_for(page, "true", JOIN_TIMEOUT_S)  # the player exists
    page.evaluate(f"() => window.promptusPlayer.setManualLevel({TOP_LEVEL})")
    wait_for(page, "s.startupS !== null", JOIN_TIMEOUT_S)
    # the rest of the feed, a segment the top level missed and one every level missed among it
    for index in range(JOINED_AT, GAPPY_CHUNKS):
        gap_levels = {TOP_LEVEL} if index == LEVEL_GAP else set()
        if index == EVERY_LEVEL_GAP:
            gap_levels = set(range(len(LEVELS)))
        closed = index - 1 in (LEVEL_GAP, EVERY_LEVEL_GAP)  # a new segment after a gap
        publish_live_chunk(writer, index, gap_levels, closed)

    # the playhead passes both gaps and plays on to the edge's last chunk, without a stall
    wait_for(page, f"s.currentTime > {(GAPPY_CHUNKS - 1) * CHUNK_FRAMES / STREAM_FPS + 0.2}", 90)
    played = snapshot(page)
    assert played["stalls"] == 0, played
    assert played["live"] is True and played["chunkCount"] == GAPPY_CHUNKS, played

    # what the server sent: the level below for the top level's gap, nothing for the other
    deadline = time.monotonic() + 10
    while (delivered := delivered_levels(stack.telemetry, GAPPY_CHANNEL)).get(
        GAPPY_CHUNKS - 2
    ) is None:
        assert time.monotonic() < deadline, delivered
        time.sleep(0.5)
    assert delivered[LEVEL_GAP] == {TOP_LEVEL - 1}, delivered
    assert EVERY_LEVEL_GAP not in delivered, delivered
    for index in (LEVEL_GAP - 1, LEVEL_GAP + 1, EVERY_LEVEL_GAP - 1, EVERY_LEVEL_GAP + 1):
        assert delivered[index] == {TOP_LEVEL}, (index, delivered)
