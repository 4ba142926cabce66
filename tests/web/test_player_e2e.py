"""The player end to end in Debian's Chromium: real server, real daemon (tiny generator, CPU)."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from common.ports import free_port
from prompts.legacy import LEGACY_GENERATOR_ID
from tests.web.conftest import ARTIFACTS, Stack
from tests.web.stack import (
    CHANNEL,
    START_TIMEOUT_S,
    STREAM_FPS,
    promptus_child,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STARTUP_TIMEOUT_S = 60  # first frame; generous for two cores shared with the daemon
OTHER_GENERATOR = "nano:0123456789abcdef"  # a channel the stack's daemon (tiny) does not play
SMALL_BUFFER_S = "4"  # so a level switch or a daemon loss shows up within seconds


def channels(stack: Stack) -> list[dict]:
    with urllib.request.urlopen(f"{stack.origin}/channels", timeout=5) as response:
        return list(json.load(response)["channels"])


def snapshot(page) -> dict:  # type: ignore[no-untyped-def]
    return page.evaluate("() => window.promptusPlayer.snapshot()")


def wait_for(page, predicate: str, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    """Waits until the JS expression `predicate` (over `s`, the player snapshot) is true."""
    page.wait_for_function(
        f"() => {{ const s = window.promptusPlayer?.snapshot(); return s !== undefined && ({predicate}); }}",
        timeout=timeout_s * 1000,
        polling=100,
    )


def open_player(page, stack: Stack, **params: str) -> dict:  # type: ignore[no-untyped-def]
    page.goto(stack.page_url(**params))
    wait_for(page, "s.startupS !== null", STARTUP_TIMEOUT_S)
    return snapshot(page)


def notice_text(page, kind: str) -> str:  # type: ignore[no-untyped-def]
    locator = page.locator(f'#notices [data-kind="{kind}"]')
    return locator.inner_text() if locator.count() else ""


def stat(page, name: str) -> str:  # type: ignore[no-untyped-def]
    return page.locator(f"#stats [data-stat={name}]").inner_text()


def wait_for_text(page, selector: str, text: str, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    """Waits until the element ``selector`` contains ``text``."""
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.textContent.includes(text)",
        arg=[selector, text],
        timeout=timeout_s * 1000,
        polling=100,
    )


def assert_nothing_plays(page) -> None:  # type: ignore[no-untyped-def]
    """No level, bitrate or quality while nothing plays; no chart points; no loading spinner
    (Chromium turns one while the element has a source and no data: the source is let go)."""
    for name in ("level", "rank", "kbps", "quality"):
        assert stat(page, name) == "-", (name, stat(page, name))
    for chart in ("chart-bitrate", "chart-quality"):
        wait_for_text(page, f"#{chart} + figcaption", "no value yet", 5)  # sampled, and empty
    wait_for(
        page, "document.getElementById('video').networkState === HTMLMediaElement.NETWORK_EMPTY", 5
    )


def keep_screenshot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of the page as a CI artefact (test-artifacts/web/NAME.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_plays_without_stalls_and_keeps_a_screenshot(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    started = open_player(page, stack, abr="mpc")
    wait_for(page, f"s.currentTime > {started['currentTime'] + 4}")
    played = snapshot(page)
    assert played["decodedFrames"] >= started["decodedFrames"] + 3 * STREAM_FPS
    assert played["stalls"] == 0, f"stalled after startup on an unthrottled link: {played}"
    assert played["state"] != "blocked" and played["blocked"] is None
    assert played["daemonFps"] is not None and played["daemonDevice"] == "cpu"
    assert 0 < played["startupS"] < STARTUP_TIMEOUT_S
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "player.png"))
    # The first viewer of a fresh daemon pays its warm-up; measure a second one too.
    warm = open_player(page, stack, abr="mpc")
    (ARTIFACTS / "e2e-metrics.json").write_text(
        json.dumps(
            {
                "startup_s": played["startupS"],
                "startup_marks_s": played["startupMarks"],
                "startup_warm_daemon_s": warm["startupS"],
                "startup_warm_marks_s": warm["startupMarks"],
                "daemon_fps": played["daemonFps"],
                "buffer_s": played["bufferS"],
                "position_s": played["currentTime"],
                "decoded_frames": played["decodedFrames"],
                "dropped_frames": played["droppedFrames"],
                "stalls": played["stalls"],
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"startup {played['startupS']:.3f} s (warm daemon {warm['startupS']:.3f} s), daemon {played['daemonFps']:.1f} fps"
    )


def test_forced_level_switch_shows_chosen_and_playing_level_apart(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    open_player(page, stack, abr="fixed", fixed="0", buffer="6")
    wait_for(page, "s.bufferS > 3")
    # The rule picks: the Level menu and the "Level chosen" row say so alike.
    assert page.inner_text("#level option[value=auto]") == "ABR fixed"
    assert stat(page, "chosen").startswith("0: r2n15 (ABR fixed)")
    # One quality, one unit each: the table's SSIM in dB is what the chart plots and names.
    wait_for_text(page, "#stats [data-stat=quality]", "SSIM 0.800 (7.0 dB SSIM), PSNR 20.0 dB")
    wait_for_text(page, "#chart-quality + figcaption", "now 7.0 dB")
    caption = page.inner_text("#chart-quality + figcaption")
    assert caption.startswith("quality, SSIM in dB") and "axis 0 to 10 dB" in caption
    page.select_option("#level", "2")
    # At once: level 2 is chosen, level 0 still plays out of the buffer, and the page says when 2 shows.
    wait_for_text(page, "#stats [data-stat=chosen]", "2: r8n5 (manual); on screen", 5)
    assert stat(page, "level").startswith("0: r2n15")
    keep_screenshot(page, "manual-level")
    wait_for(page, "s.levelId === 2 && s.manualLevel === 2", 40)
    switched = snapshot(page)
    wait_for(page, f"s.currentTime > {switched['currentTime'] + 2}")
    after = snapshot(page)
    assert after["levelId"] == 2 and after["stalls"] == 0
    assert stat(page, "level").startswith("2: r8n5") and stat(page, "chosen") == "2: r8n5 (manual)"
    wait_for_text(page, "#stats [data-stat=quality]", "SSIM 0.900 (10.0 dB SSIM), PSNR 28.0 dB")
    wait_for_text(page, "#chart-quality + figcaption", "now 10.0 dB")


def test_the_abr_can_rank_chunks_by_vmaf(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    stack.publish("vmaf", stack.generator_id, frames=10 * STREAM_FPS, vmaf=True)
    open_player(page, stack, channel="vmaf", abr="fixed", fixed="1", quality="vmaf")
    wait_for_text(page, "#stats [data-stat=quality]", "SSIM 0.850, PSNR 24.0 dB, VMAF 70.0")
    wait_for_text(page, "#chart-quality + figcaption", "now 70.0 VMAF")
    assert page.inner_text("#chart-quality + figcaption").startswith("quality, VMAF (vmaf_v0.6.1")
    assert snapshot(page)["qualityValue"] == 70.0 and notice_text(page, "quality") == ""
    # a ladder fitted without --vmaf: said, and the ABR falls back to chunk sizes
    page.goto(stack.page_url(quality="vmaf"))
    wait_for_text(page, '#notices [data-kind="quality"]', "carry no vmaf")
    assert "promptus ladder --vmaf" in notice_text(page, "quality")


def test_seek_outside_the_buffer_keeps_playing(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    started = open_player(page, stack, abr="throughput", buffer=SMALL_BUFFER_S)
    assert started["currentTime"] < 5
    page.evaluate("() => window.promptusPlayer.seek(30.5)")
    # lands there (not clamped to the buffer, not reached by playing 30 s through)
    wait_for(page, "s.currentTime >= 30.5 && s.chunk === 30 && s.bufferS > 0.5", 15)
    landed = snapshot(page)
    assert landed["currentTime"] < 32
    wait_for(page, f"s.currentTime > {landed['currentTime'] + 2}")
    assert snapshot(page)["stalls"] == 0  # waiting for the seek target is not a stall
    assert notice_text(page, "seek") == ""
    # Past what a looping 40 s ladder can seek to in its first pass (the end of the second): said so.
    assert page.evaluate("() => window.promptusPlayer.seek(500)") == pytest.approx(80, abs=0.01)
    text = notice_text(page, "seek")
    assert "Cannot seek to 500.0 s" in text and "up to 80.0 s" in text, text
    wait_for(page, "s.currentTime >= 79.9 && s.bufferS > 0.5", 15)
    keep_screenshot(page, "seek-past-end")


def test_channel_switch_plays_the_other_channel_from_its_start(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    stack.publish("second", stack.generator_id, frames=10 * STREAM_FPS)
    started = open_player(page, stack, abr="bba")
    wait_for(page, f"s.currentTime > {started['currentTime'] + 1}")
    page.fill("#channel", "second")
    page.click("#switch-channel")
    # a new session: startup measured again, position back to the new channel's start
    wait_for(page, "s.channel === 'second' && s.startupS !== null && s.chunkCount === 10", 40)
    switched = snapshot(page)
    assert switched["currentTime"] < 3
    wait_for(page, f"s.currentTime > {switched['currentTime'] + 2}")
    assert snapshot(page)["stalls"] == 0
    assert "channel=second" in page.url


def test_daemon_missing_or_foreign_origin_or_other_generator_is_explained(
    page, stack: Stack
) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack.page_url(daemon=f"ws://127.0.0.1:{free_port()}"))
    page.wait_for_selector('#notices [data-kind="daemon"]', timeout=15_000)
    assert "No generation daemon answers" in notice_text(page, "daemon")
    assert "promptus daemon" in notice_text(page, "daemon")

    # Same server under another host name: another origin, which the daemon was not told to allow.
    page.goto(stack.page_url().replace("127.0.0.1", "foreign.test", 1))
    page.wait_for_selector('#notices [data-kind="daemon"]', timeout=15_000)
    text = notice_text(page, "daemon")
    assert f"refused this page's origin http://foreign.test:{stack.server_port}" in text
    assert f"--allow-origin http://foreign.test:{stack.server_port}" in text
    assert snapshot(page)["startupS"] is None

    stack.publish("other", OTHER_GENERATOR, frames=2 * STREAM_FPS)
    page.goto(stack.page_url(channel="other"))
    page.wait_for_selector('#notices [data-kind="generator"]', timeout=30_000)
    wait_for_text(page, '#notices [data-kind="generator"]', f"runs {stack.generator_id}")
    assert notice_text(page, "generator") == (
        f"This channel needs generator {OTHER_GENERATOR} (the daemon here runs "
        f"{stack.generator_id}): start the daemon with promptus daemon --generator nano, then "
        "press Retry daemon."
    )
    assert snapshot(page)["blocked"]["kind"] == "generator_mismatch"
    assert_nothing_plays(page)

    # An imported legacy ladder keeps the placeholder id no daemon has: the fix is a new import.
    stack.publish("imported", LEGACY_GENERATOR_ID, frames=2 * STREAM_FPS)
    page.goto(stack.page_url(channel="imported"))
    wait_for_text(page, '#notices [data-kind="generator"]', f"--generator-id {stack.generator_id}")
    text = notice_text(page, "generator")
    assert "placeholder generator id" in text and "promptus import-legacy" in text, text
    note = page.inner_text("#generator-note")
    assert "Nothing plays" in note and "generated on this machine" not in note, note
    keep_screenshot(page, "imported-channel")


def test_unknown_channel_lists_the_channels_to_pick_from(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack.page_url(channel="no-such-channel"))
    page.wait_for_selector(f'#channel-list button[data-channel="{CHANNEL}"]', timeout=15_000)
    assert "no channel 'no-such-channel'" in notice_text(page, "channel")
    assert_nothing_plays(page)
    listed = page.inner_text("#channel-list")
    assert f"tiny ({stack.generator_id})" in listed, listed
    keep_screenshot(page, "unknown-channel")
    page.click(f'#channel-list button[data-channel="{CHANNEL}"]')
    wait_for(page, f"s.channel === '{CHANNEL}' && s.startupS !== null", STARTUP_TIMEOUT_S)
    assert f"channel={CHANNEL}" in page.url and page.locator("#channel-list").is_hidden()
    assert notice_text(page, "channel") == ""


def test_a_daemon_slower_than_real_time_is_explained(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    # 1000 frames a second: no CPU daemon keeps up with that (the tiny one makes ~150 here).
    stack.publish("fast-clock", stack.generator_id, frames=900, fps=1000.0, chunk_frames=90)
    page.goto(stack.page_url(channel="fast-clock"))
    # From the first chunk on (it takes longer than it plays), then with the measured speed.
    wait_for_text(
        page, '#notices [data-kind="speed"]', "frames/s on cpu, slower than real time", 30
    )
    text = notice_text(page, "speed")
    assert "this stream plays 1000 frames/s" in text and "--device cuda" in text, text
    wait_for(page, "s.daemonFps !== null")
    wait_for_text(page, "#stats [data-stat=daemon]", "slower than real time (stream: 1000 fps)")
    # One truth: the note under the video says what the notice says, from the same fps.
    wait_for_text(page, "#generator-note", "slower than real time: this stream plays 1000 frames/s")
    keep_screenshot(page, "slow-daemon")


def test_telemetry_rows_reach_the_server_database(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    started = open_player(page, stack, abr="bola")
    wait_for(page, f"s.currentTime > {started['currentTime'] + 3} && s.statsSent >= 3")
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(f"file:{stack.telemetry}?mode=ro", uri=True) as db:
            sessions = db.execute(
                "SELECT id FROM sessions WHERE abr = 'bola' AND channel = ?", (CHANNEL,)
            ).fetchall()
            ids = [row[0] for row in sessions]
            marks = ",".join("?" * len(ids))
            events = (
                [
                    row[0]
                    for row in db.execute(
                        f"SELECT event FROM reports WHERE session_id IN ({marks})", ids
                    )
                ]
                if ids
                else []
            )
            acked = (
                db.execute(
                    f"SELECT COUNT(*) FROM deliveries WHERE session_id IN ({marks}) AND acked_at IS NOT NULL",
                    ids,
                ).fetchone()[0]
                if ids
                else 0
            )
        if (
            "startup" in events and events.count("timer") >= 2 and acked >= 2
        ) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(ids) == 1, f"sessions with abr bola: {ids}"
    assert "startup" in events and events.count("timer") >= 2, events
    assert acked >= 2


def test_killed_daemon_is_recovered(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    started = open_player(page, stack, abr="mpc", buffer=SMALL_BUFFER_S)
    wait_for(page, f"s.currentTime > {started['currentTime'] + 1}")
    stack.daemon.kill()
    lost_at = snapshot(page)
    page.wait_for_selector('#notices [data-kind="daemon"]', timeout=15_000)
    stack.restart_daemon()
    # Everything buffered before the kill plays out; then only the restarted daemon can feed it.
    beyond = lost_at["currentTime"] + lost_at["bufferS"] + 2
    wait_for(page, f"s.currentTime > {beyond} && s.daemonConnected", 60)
    assert notice_text(page, "daemon") == ""


def test_a_stopped_daemon_takes_its_refusal_along_and_startup_counts_from_its_return(
    page, stack: Stack
) -> None:  # type: ignore[no-untyped-def]
    if "other" not in {c["name"] for c in channels(stack)}:
        stack.publish("other", OTHER_GENERATOR, frames=2 * STREAM_FPS)
    page.goto(stack.page_url(channel="other"))
    page.wait_for_selector('#notices [data-kind="generator"]', timeout=30_000)
    stack.daemon.kill()
    # One banner, and it starts the daemon this channel needs (not the default `tiny`).
    wait_for_text(page, '#notices [data-kind="daemon"]', "No generation daemon answers")
    assert "promptus daemon --generator nano" in notice_text(page, "daemon")
    assert notice_text(page, "generator") == ""
    assert "No daemon generates it now" in page.inner_text("#generator-note")
    assert_nothing_plays(page)
    # A channel that can play, while no daemon answers: its startup counts from the daemon's return.
    page.fill("#channel", CHANNEL)
    page.click("#switch-channel")
    wait_for(page, f"s.channel === '{CHANNEL}' && s.chunkCount !== null")
    time.sleep(2)
    stack.restart_daemon()
    back = time.monotonic()
    wait_for(page, "s.startupS !== null", STARTUP_TIMEOUT_S)
    startup = snapshot(page)["startupS"]
    assert 0 < startup <= time.monotonic() - back + 0.5, startup
    assert notice_text(page, "daemon") == ""


def test_restarted_server_is_recovered(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    started = open_player(page, stack, abr="bba", buffer=SMALL_BUFFER_S)
    wait_for(page, f"s.currentTime > {started['currentTime'] + 1}")
    assert stack.server is not None
    stack.server.stop()  # graceful: the page is told `going_away`
    lost_at = snapshot(page)
    page.wait_for_selector('#notices [data-kind="server"]', timeout=15_000)
    stack.restart_server()
    beyond = lost_at["currentTime"] + lost_at["bufferS"] + 2
    wait_for(page, f"s.currentTime > {beyond} && s.serverConnected", 60)
    assert notice_text(page, "server") == ""


def test_demo_command_serves_a_playing_page(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`promptus demo` (nano, the shipped clip) reusing a ladder fitted here on 2 s of the clip:
    the page plays it, says which generator it is, and a screenshot is kept as an artefact."""
    from authoring.build import FitOptions, build_ladder
    from authoring.levels import parse_levels
    from authoring.presets import get_preset
    from authoring.source import load_source
    from engines import load_generator
    from promptus.commands.demo import DEMO_CLIP, DEMO_CLIP_SIZE, DEMO_GENERATOR, demo_ladder_dir

    data = tmp_path / "demo-data"
    build_ladder(
        load_source(DEMO_CLIP, DEMO_CLIP_SIZE, max_frames=48), demo_ladder_dir(data),
        generator=load_generator(DEMO_GENERATOR, device="cpu"), levels=parse_levels("r8n10"),
        options=FitOptions(preset=get_preset("encoder")), chunk_seconds=1.0, progress=False,
    )  # fmt: skip
    daemon_port = free_port()
    process = promptus_child(
        "demo",
        [
            "demo",
            "--data",
            str(data),
            "--port",
            str(free_port()),
            "--daemon-port",
            str(daemon_port),
        ],
        env={"OMP_NUM_THREADS": "1"},
    )
    try:
        url = process.wait_for_line(re.compile(r"open (http://\S+)"), START_TIMEOUT_S).group(1)
        assert "fitting" not in process.output()  # reused, not refitted, and said so
        assert "reusing the ladder in" in process.output() and "--rebuild" in process.output()
        page.goto(url)
        wait_for(page, "s.startupS !== null", STARTUP_TIMEOUT_S)
        start = snapshot(page)["currentTime"]
        wait_for(page, f"s.currentTime > {start + 3}")  # 2 s ladder: plays on across the loop
        note = page.inner_text("#generator-note")
        assert "trained here" in note and "two CPU cores" not in note, note
        # the note's pace is the speed notice's: both from the daemon's measured fps
        page.wait_for_function(
            """() => {
              const note = document.getElementById('generator-note').textContent;
              const slow = document.querySelector('#notices [data-kind="speed"]') !== null;
              return note.includes('The daemon generates') && note.includes('slower than real time') === slow;
            }""",
            timeout=30_000,
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo-nano.png"))
    finally:
        process.stop()
    assert process.returncode == 0, process.output()
    with socket.socket() as sock:  # the demo took its daemon down with it
        assert sock.connect_ex(("127.0.0.1", daemon_port)) != 0
