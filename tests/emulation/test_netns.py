"""Kernel shaping in the run's own namespaces: delivered rate (bulk TCP), trace following, teardown."""

from __future__ import annotations

import subprocess
import time

import pytest

from emulation.netns import (
    MIN_RATE_KBIT,
    MIN_UPDATE_S,
    NetnsError,
    ShapedPair,
    TracePlayer,
    _tbf_args,
    check_available,
    measure_downlink,
    our_namespaces,
    rate_between,
    update_schedule,
)
from emulation.traces import Trace

TCP_EFFICIENCY = 1448 / 1500  # payload share of a full TCP/IPv4 packet with timestamps


def namespaces_allowed() -> bool:
    try:
        check_available()
    except NetnsError:
        return False
    probe = subprocess.run(
        ["ip", "netns", "add", "promptus-emu-probe"], capture_output=True, check=False
    )
    subprocess.run(["ip", "netns", "del", "promptus-emu-probe"], capture_output=True, check=False)
    return probe.returncode == 0


needs_netns = pytest.mark.skipif(
    not namespaces_allowed(), reason="needs root and network namespaces"
)


def test_update_schedule_merges_short_segments_and_loops() -> None:
    trace = Trace.steps([(0.05, 2.0), (0.05, 4.0), (0.2, 1.0)])  # 0.3 s loop
    schedule = update_schedule(trace, 0.6)
    assert [round(t, 3) for t, _ in schedule] == [0.0, 0.1, 0.3, 0.4]
    assert [r for _, r in schedule] == pytest.approx([3.0, 1.0, 3.0, 1.0])
    assert update_schedule(Trace.constant(5.0, 1.0), 10.0) == [(0.0, 5.0)]
    assert all(
        b[0] - a[0] >= MIN_UPDATE_S - 1e-9 for a, b in zip(schedule, schedule[1:], strict=False)
    )


def test_outage_is_shaped_to_the_minimum_rate() -> None:
    args = _tbf_args(0.0, 300_000)
    assert args[:3] == ["tbf", "rate", f"{MIN_RATE_KBIT}kbit"]
    assert _tbf_args(12.0, 300_000)[2] == "12000kbit"


@needs_netns
@pytest.mark.slow
def test_shaping_delivers_the_traces_rates() -> None:
    with ShapedPair(initial_mbps=8.0) as pair:
        player = TracePlayer(pair, Trace.steps([(6.0, 4.0), (4.0, 16.0)]), duration_s=10.0).start()
        samples = measure_downlink(pair, 10.5)  # its processes may start a second or two late
        player.stop()
    start, first, last = player.started_at, samples[0][0], samples[-1][0]
    assert first < start + 4.0 and last > start + 9.8, "the bulk transfer did not cover the trace"
    low = rate_between(samples, max(first, start) + 0.7, start + 5.8)
    high = rate_between(samples, start + 6.7, start + 9.8)
    assert low == pytest.approx(4.0 * TCP_EFFICIENCY, rel=0.1)
    assert high == pytest.approx(16.0 * TCP_EFFICIENCY, rel=0.1)
    assert player.applied == 2


@needs_netns
def test_teardown_removes_namespaces_and_processes_even_on_failure() -> None:
    before = set(our_namespaces())
    with pytest.raises(RuntimeError, match="boom"), ShapedPair() as pair:
        names = {pair.server_ns, pair.viewer_ns}
        assert names <= set(our_namespaces())
        sleeper = subprocess.Popen([*pair.exec_prefix(pair.viewer_ns), "sleep", "60"])
        time.sleep(0.2)
        raise RuntimeError("boom")
    assert sleeper.wait(timeout=5) is not None  # killed by the teardown
    assert not names & set(our_namespaces())
    assert set(our_namespaces()) <= before
