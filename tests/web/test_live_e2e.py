"""A live channel end to end: `promptus live` fits a paced frame-folder feed (tiny generator,
CPU) into a growing ladder while `promptus serve` serves it, and a viewer in Debian's Chromium
joins at the live edge, plays several chunks without a stall, reports how far behind live it
plays, and sees the window slide and the feed end."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from authoring.procedural_clip import render_clip
from prompts.manifest import ManifestError, load_manifest
from tests.web.conftest import Stack
from tests.web.stack import STREAM_SIZE, promptus_child
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
