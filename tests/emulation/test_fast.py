"""The fast simulator (real Node, the player's real web/abr/ rules) against hand-computed cases.

Model constants of the hand cases: RTT 0.1 s, all link capacity carries payload, no noise,
daemon at 300 fps (60-frame chunk = 0.2 s), daemon ready at 0.3 s, trace from its start, one
media segment per chunk (a 60-frame GOP) unless a case says otherwise.
Level 0 chunks are 25 000 B (0.2 Mbit), level 1 chunks 250 000 B (2 Mbit), 2 s each.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from emulation.catalog import build_catalog
from emulation.fast import SimConfig, SimulatorError, run_fast, session_chunks
from emulation.ladder import SimLadder, ssim_to_db, synthetic_ladder
from emulation.metrics import scheme_summary, stream_metrics
from emulation.traces import Trace

HAND = SimConfig(
    rtt_s=0.1,
    payload_share=1.0,
    delay_noise=0.0,
    daemon_fps=300.0,
    daemon_jitter=0.0,
    daemon_open_s=0.3,
    gop_frames=60,
    random_start=False,
)


def two_level_ladder(chunks: int = 4) -> SimLadder:
    return SimLadder(
        name="hand",
        level_names=("low", "high"),
        chunk_s=np.full(chunks, 2.0),
        sizes_bytes=np.array([[25_000] * chunks, [250_000] * chunks], dtype=np.int64),
        keyframes=np.full((2, chunks), 6, dtype=np.int64),
        quality_db=np.array([[20.0] * chunks, [30.0] * chunks]),
        ssim=None,
        quality_metric="psnr_db",
        fps=30.0,
        chunk_frames=60,
    )


def fixed(level: int) -> dict[str, dict[str, int]]:
    return {"fixed": {"level": level}}


def test_constant_link_timeline() -> None:
    [result] = run_fast(
        two_level_ladder(),
        [Trace.constant(1.0, 100.0)],
        ["fixed"],
        replace(HAND, session_s=8.0),
        abr_options=fixed(0),
    )
    log = result.chunks
    # chunk 0: asked at 0.1 (after hello), 0.1 RTT + 0.2 s transfer, generated 0.4 -> 0.6.
    assert log["tReq"] == pytest.approx([0.1, 0.4, 0.7, 1.0])
    assert log["tDl"] == pytest.approx([0.4, 0.7, 1.0, 1.3])
    assert log["tApp"] == pytest.approx([0.6, 0.9, 1.2, 1.5])
    assert result.startup_s == pytest.approx(0.6)
    assert result.end_s == pytest.approx(8.6)
    assert result.stalls == []
    assert log["prefixBytes"] == [0, 0, 0, 0]


def test_step_change_causes_the_hand_computed_stalls() -> None:
    # 2 Mbit/s for 10 s then 0.5 Mbit/s; 2 Mbit chunks take 1 s, then 4 s for 2 s of video.
    trace = Trace.steps([(10.0, 2.0), (100.0, 0.5)])
    config = replace(HAND, session_s=28.0)
    [result] = run_fast(two_level_ladder(14), [trace], ["fixed"], config, abr_options=fixed(1))
    log = result.chunks
    assert result.startup_s == pytest.approx(1.4)
    assert log["tDl"][8] == pytest.approx(10.0)  # the last fast chunk ends exactly at the step
    assert log["tDl"][9] == pytest.approx(14.1)  # 0.1 RTT + 4 s at 0.5 Mbit/s
    assert log["tApp"][12:] == pytest.approx([26.6, 30.7])
    assert result.stalls == [pytest.approx((25.4, 26.6)), pytest.approx((28.6, 30.7))]
    assert result.end_s == pytest.approx(32.7)


def test_outage_stalls_until_the_link_returns() -> None:
    # 1 Mbit/s, then 20 s of nothing from t = 3 s. Buffer fills to 15 s first.
    trace = Trace.steps([(3.0, 1.0), (20.0, 0.0), (100.0, 1.0)])
    config = replace(HAND, session_s=22.0)
    [result] = run_fast(two_level_ladder(11), [trace], ["fixed"], config, abr_options=fixed(0))
    log = result.chunks
    assert log["tReq"][9] == pytest.approx(3.6)  # waited for the buffer to fall to 15 s
    assert log["tDl"][9] == pytest.approx(23.2)
    assert result.stalls == [pytest.approx((18.6, 23.4))]
    assert result.end_s == pytest.approx(27.4)


def test_slow_daemon_stalls_even_on_a_fast_link() -> None:
    # 20 fps for 30 fps video: each 2 s chunk needs 3 s of generation.
    config = replace(HAND, session_s=8.0, daemon_fps=20.0)
    [result] = run_fast(
        two_level_ladder(), [Trace.constant(100.0, 50.0)], ["fixed"], config, abr_options=fixed(0)
    )
    # Generation (3 s a chunk, from daemon ready at 0.3 s) is the bottleneck: appends 3.3, 6.3, ...
    assert result.chunks["tApp"] == pytest.approx([3.3, 6.3, 9.3, 12.3])
    # The player keeps at most 2 chunks at the daemon: chunk 2 waits for chunk 0's segment.
    assert result.chunks["tReq"][2:] == pytest.approx([3.3, 6.3])
    assert result.startup_s == pytest.approx(3.3)
    assert result.end_s == pytest.approx(14.3)
    assert len(result.stalls) == 3
    assert sum(e - s for s, e in result.stalls) == pytest.approx(3.0, abs=1e-6)


def test_gop_segments_start_playback_one_gop_after_the_download() -> None:
    """15-frame GOPs: chunk 0 (downloaded at 0.4 s) plays from its first GOP at 0.45 s, not 0.6 s."""
    config = replace(HAND, session_s=8.0, gop_frames=15)
    [result] = run_fast(
        two_level_ladder(), [Trace.constant(1.0, 100.0)], ["fixed"], config, abr_options=fixed(0)
    )
    assert result.startup_s == pytest.approx(0.45)
    assert result.chunks["tApp"] == pytest.approx([0.6, 0.9, 1.2, 1.5])  # whole chunks: as before
    assert result.chunks["bufAfterApp"][0] == pytest.approx(
        2.0 - 0.15
    )  # played 0.15 s of it meanwhile
    assert result.end_s == pytest.approx(8.45)
    assert result.stalls == []


def test_switch_prefix_rides_in_front_of_a_changed_level() -> None:
    config = replace(HAND, session_s=60.0)
    [result] = run_fast(two_level_ladder(30), [Trace.constant(3.0, 100.0)], ["bba"], config)
    levels, prefixes = result.chunks["level"], result.chunks["prefixBytes"]
    assert 1 in levels  # BBA climbs once the buffer passes its reservoir
    for k in range(1, len(levels)):
        expected = (
            {0: 25_000 // 6 + 1, 1: 250_000 // 6 + 1}[levels[k]]
            if levels[k] != levels[k - 1]
            else 0
        )
        assert prefixes[k] == expected


def test_deterministic_for_a_seed_and_common_across_abrs() -> None:
    ladder = synthetic_ladder()
    traces = [Trace.steps([(7.0, 0.3), (5.0, 2.0), (11.0, 0.8)], name="wobbly")]
    config = SimConfig(session_s=60.0)
    first = run_fast(ladder, traces, ["bba", "mpc"], config, seed=7)
    again = run_fast(ladder, traces, ["bba", "mpc"], config, seed=7)
    other = run_fast(ladder, traces, ["bba", "mpc"], config, seed=8)
    assert [r.to_json() for r in first] == [r.to_json() for r in again]
    assert first[0].offset_s == first[1].offset_s  # both ABRs start at the same trace point
    assert first[0].offset_s != other[0].offset_s


def test_four_abrs_react_to_link_speed() -> None:
    ladder = synthetic_ladder()
    config = SimConfig(session_s=120.0)
    slow = run_fast(
        ladder,
        [Trace.constant(0.05, 60.0, name="slow")],
        ["bba", "mpc", "throughput", "bola"],
        config,
    )
    fast = run_fast(
        ladder,
        [Trace.constant(20.0, 60.0, name="fast")],
        ["bba", "mpc", "throughput", "bola"],
        config,
    )
    for s, f in zip(slow, fast, strict=True):
        assert np.mean(s.chunks["level"]) < np.mean(f.chunks["level"]), s.abr


def test_session_length_and_errors() -> None:
    ladder = two_level_ladder(4)
    assert session_chunks(ladder, 8.0) == 4
    assert session_chunks(ladder, 9.0) == 5  # the ladder loops
    with pytest.raises(SimulatorError, match="unknown ABR 'pensieve'"):
        run_fast(ladder, [Trace.constant(1.0, 10.0)], ["pensieve"])
    with pytest.raises(SimulatorError, match="delivers nothing"):
        run_fast(ladder, [Trace.constant(0.0, 10.0)], ["bba"])
    with pytest.raises(SimulatorError, match="fixed level must be an integer"):
        run_fast(ladder, [Trace.constant(1.0, 10.0)], ["fixed"], abr_options=fixed(-1))


def sky_tiny_ladder() -> SimLadder:
    """The README's sky-tiny ladder as `promptus ladder` measured it (tiny-taesd, 61 frames at
    30 fps, 2 s chunks): the last chunk holds one frame and no keyframe (75 B at every level),
    and the levels' SSIM are near-equal and inverted (r2n10 beats r4n10)."""
    ssim = np.array([[0.14223, 0.12109], [0.15289, 0.13372], [0.14633, 0.12809]])
    return SimLadder(
        name="sky-tiny (measured)",
        level_names=("r1n10", "r2n10", "r4n10"),
        chunk_s=np.array([2.0, 1 / 30]),
        sizes_bytes=np.array([[5290, 75], [10039, 75], [21021, 75]], dtype=np.int64),
        keyframes=np.array([[7, 0], [7, 0], [7, 0]], dtype=np.int64),
        quality_db=ssim_to_db(ssim),
        ssim=ssim,
        quality_metric="ssim_db",
        fps=30.0,
        chunk_frames=60,
    )


@pytest.mark.parametrize("daemon_fps", [500.0, 4.4])
def test_near_equal_levels_do_not_make_the_rules_oscillate(
    traces_dir: Path, daemon_fps: float
) -> None:
    """Issue 16: BBA and MPC switched ~57 times a minute on this ladder over real traces."""
    by_source: dict[str, list[Trace]] = {}
    for entry in build_catalog(traces_dir):
        if len(by_source.setdefault(entry.source, [])) < 2:
            by_source[entry.source].append(entry.load())
    traces = [t for group in by_source.values() for t in group]
    ladder = sky_tiny_ladder()
    rules = ["bba", "mpc", "throughput", "bola"]
    config = SimConfig(session_s=120.0, daemon_fps=daemon_fps)
    results = run_fast(ladder, traces, rules, config)
    streams = [stream_metrics(r, ladder) for r in results]
    for rule in rules:
        summary = scheme_summary(rule, streams, ssim=True)
        assert summary.switches_per_min < 1.0, (rule, summary.switches_per_min)
    if daemon_fps < ladder.fps:  # slower than real time: every rule holds the lowest level
        assert all(set(r.chunks["level"]) == {0} for r in results)
