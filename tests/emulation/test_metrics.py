"""Puffer's stream and scheme statistics on hand-built sessions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emulation.fast import SessionResult
from emulation.ladder import SimLadder, ssim_to_db
from emulation.metrics import (
    MIN_WATCH_S,
    scheme_summary,
    stall_ratio_interval,
    stream_metrics,
    summaries_by_source,
)


def ladder(ssim: np.ndarray | None = None) -> SimLadder:
    return SimLadder(
        name="hand",
        level_names=("a", "b"),
        chunk_s=np.full(4, 2.0),
        sizes_bytes=np.array([[1000] * 4, [3000] * 4], dtype=np.int64),
        keyframes=np.full((2, 4), 2, dtype=np.int64),
        quality_db=np.array([[20.0] * 4, [30.0] * 4]) if ssim is None else ssim_to_db(ssim),
        ssim=ssim,
        quality_metric="psnr_db" if ssim is None else "ssim_db",
        fps=30.0,
        chunk_frames=60,
    )


def session(
    levels: list[int],
    *,
    startup: float | None = 1.0,
    end: float = 101.0,
    stalls: list[tuple[float, float]] | None = None,
    abr: str = "bba",
    trace: str = "t",
    qualities: tuple[float, float] = (20.0, 30.0),
) -> SessionResult:
    n = len(levels)
    return SessionResult(
        trace=trace,
        source="src",
        abr=abr,
        seed=1,
        offset_s=0.0,
        startup_s=startup,
        end_s=end,
        abandoned=False,
        stalls=stalls or [],
        chunks={
            "level": levels,
            "chunk": [k % 4 for k in range(n)],
            "bytes": [1000 if lv == 0 else 3000 for lv in levels],
            "prefixBytes": [0] * n,
            "quality": [qualities[lv] for lv in levels],
            "tReq": [0.5 * k for k in range(n)],
            "tDl": [0.5 * k + 0.2 for k in range(n)],
            "tApp": [0.5 * k + 0.3 for k in range(n)],
            "bufAtReq": [0.0] * n,
            "bufAfterApp": [2.0] * n,
            "dlS": [0.2] * n,
            "deliveryMbps": [8.0] * n,
        },
    )


def test_stream_statistics_by_hand() -> None:
    m = stream_metrics(session([0, 1, 1, 0], stalls=[(10.0, 12.0), (50.0, 51.0)]), ladder())
    assert m.valid and not m.truncated
    assert (m.startup_s, m.watch_s, m.stall_s, m.stalls) == (1.0, 100.0, 3.0, 2)
    assert m.stall_ratio == pytest.approx(0.03)
    assert m.mean_quality_db == pytest.approx(25.0)
    assert m.quality_variation_db == pytest.approx(20.0 / 3)
    assert m.switches == 2
    assert m.mean_bitrate_kbps == pytest.approx(8000 * 8 / 8.0 / 1000)
    assert m.delivery_mbps == 8.0 and not m.slow  # slow means <= 6 Mbit/s


def test_ssim_is_averaged_as_an_index_then_converted() -> None:
    ssim = np.array([[0.9] * 4, [0.99] * 4])
    m = stream_metrics(session([0, 1], qualities=(10.0, 20.0)), ladder(ssim))
    assert m.mean_ssim == pytest.approx(0.945)
    assert m.mean_quality_db == pytest.approx(-10 * math.log10(0.055))  # not (10 + 20) / 2
    lossless = np.array([[0.9] * 4, [0.999999] * 4])  # Puffer skips SSIM > 0.99999
    assert stream_metrics(session([0, 1]), ladder(lossless)).mean_ssim == pytest.approx(0.9)


def test_long_stall_truncates_and_short_or_unstarted_streams_are_excluded() -> None:
    m = stream_metrics(session([0, 0], stalls=[(30.0, 55.0)]), ladder())
    assert m.truncated and m.watch_s == 29.0 and m.stall_s == 0.0
    assert not stream_metrics(session([0], startup=None), ladder()).valid
    short = stream_metrics(session([0], startup=1.0, end=1.0 + MIN_WATCH_S - 0.5), ladder())
    assert not short.valid


def test_scheme_summary_weights_quality_by_watch_time() -> None:
    streams = [
        stream_metrics(
            session([0, 0], end=31.0, stalls=[(5.0, 8.0)]), ladder()
        ),  # 30 s, 3 s stalled, 20 dB
        stream_metrics(session([1, 1], end=91.0), ladder()),  # 90 s, no stall, 30 dB
        stream_metrics(session([1], startup=None), ladder()),  # excluded
        stream_metrics(session([0, 1], abr="mpc"), ladder()),
    ]
    s = scheme_summary("bba", streams, ssim=False)
    assert (s.sessions, s.excluded) == (2, 1)
    assert s.stall_ratio.value == pytest.approx(3.0 / 120.0)
    assert s.stall_ratio.low <= s.stall_ratio.value <= s.stall_ratio.high
    assert s.mean_quality_db.value == pytest.approx((20 * 30 + 30 * 90) / 120)
    assert s.quality_variation_db.value == 0.0
    assert s.startup_s.value == 1.0
    row = s.to_row()
    assert list(row)[:6] == [
        "abr",
        "sessions",
        "stall_ratio",
        "mean_quality_db",
        "quality_variation_db",
        "startup_s",
    ]
    by_source = summaries_by_source(streams, ["bba", "mpc"], ssim=False)
    assert [(r["source"], r["abr"], r["sessions"]) for r in by_source] == [
        ("src", "bba", 2),
        ("src", "mpc", 1),
    ]


def test_stall_ratio_bootstrap_is_seeded_and_brackets_the_ratio() -> None:
    rng = np.random.default_rng(3)
    watch = rng.uniform(100, 300, 200)
    stall = rng.exponential(1.0, 200)
    a = stall_ratio_interval(stall, watch, seed=5)
    assert a == stall_ratio_interval(stall, watch, seed=5)
    assert a.low < a.value < a.high
    assert a.value == pytest.approx(stall.sum() / watch.sum())
    assert stall_ratio_interval(np.zeros(3), np.full(3, 10.0)).high == 0.0
