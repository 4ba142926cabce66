"""Trace readers on every format in ../shared/traces, the in-memory form, mahimahi export, errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from emulation.catalog import SOURCES, Direction, build_catalog
from emulation.traces import (
    MAHIMAHI_PACKET_BYTES,
    PairUnit,
    Trace,
    TraceFormat,
    TraceFormatError,
    read_mahimahi,
    read_pairs,
    read_trace,
    read_ucc_5g,
    sniff_format,
    summarize,
    to_mahimahi,
)

UCC_HEADER = (
    "Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,CQI,RSSI,"
    "DL_bitrate,UL_bitrate,State,PINGAVG,PINGMIN,PINGMAX,PINGSTDEV,PINGLOSS,CELLHEX,NODEHEX,LACHEX,"
    "RAWCELLID,NRxRSRP,NRxRSRQ"
)


def ucc_row(stamp: str, dl_kbps: str) -> str:
    return f"{stamp},-8.3,51.9,0,B,12,5G,-98,-10,3.0,12,-88,{dl_kbps},53,D,-,-,-,-,-,C,A81B,9CBA,1,-100.0,-15.0"


def readme_table(traces_dir: Path) -> dict[str, list[float]]:
    """File name -> the numeric cells of its row in the traces README."""
    rows: dict[str, list[float]] = {}
    for line in (traces_dir / "README.md").read_text().splitlines():
        match = re.match(r"\| `([^`]+)` \|(.*)\|\s*$", line)
        if match:
            cells = [c.strip() for c in match.group(2).split("|")]
            rows[match.group(1)] = [float(c) for c in cells if re.fullmatch(r"[0-9.]+", c)]
    return rows


# --- every real file, checked against the README's own figures --------------------------------


def test_every_shared_trace_reads_and_matches_the_readme(traces_dir: Path) -> None:
    catalog = build_catalog(traces_dir, include_uplinks=True)
    expected = readme_table(traces_dir)
    assert {e.source for e in catalog} == set(SOURCES)
    assert len(catalog) == 402
    for entry in catalog:
        trace = entry.load()
        summary = summarize(trace)
        numbers = expected[entry.name]
        duration, mean = numbers[0], numbers[2 if entry.source == "puffer" else 1]
        if entry.source == "ucc-5g":
            # README: arithmetic mean of rows; we weight by time (skipped seconds hold the value).
            assert summary.mean_mbps == pytest.approx(mean, rel=0.15), entry.name
            assert summary.duration_s == pytest.approx(duration, abs=1.0), entry.name
        else:
            assert summary.mean_mbps == pytest.approx(mean, rel=0.006, abs=0.006), entry.name
            assert summary.duration_s == pytest.approx(duration, abs=0.06), entry.name
        assert summary.p5_mbps <= summary.median_mbps <= summary.p95_mbps <= summary.max_mbps


def test_puffer_unit_is_explicit(traces_dir: Path) -> None:
    path = traces_dir / "puffer" / "trace6XjQmQ166njHpcwyAfLZtlWKAd9YGipY2+7ogpEXJUE=_0"
    stored = read_pairs(path, unit=PairUnit.MBITS_PER_S)
    default = next(e for e in build_catalog(traces_dir / "puffer") if e.path == path)
    assert default.unit is PairUnit.MBYTES_PER_S
    assert default.load().mean_mbps == pytest.approx(8 * stored.mean_mbps)
    assert stored.mean_mbps == pytest.approx(3.558, abs=0.001)  # README: as stored
    as_labelled = build_catalog(traces_dir / "puffer", puffer_unit=PairUnit.MBITS_PER_S)
    assert {e.unit for e in as_labelled} == {PairUnit.MBITS_PER_S}


def test_uplinks_are_flagged_and_left_out_by_default(traces_dir: Path) -> None:
    every = build_catalog(traces_dir / "mahimahi-cellular", include_uplinks=True)
    downlinks = build_catalog(traces_dir / "mahimahi-cellular")
    assert {e.name for e in every if e.direction is Direction.UP} == {
        "ATT-LTE-driving-2016.up",
        "Verizon-EVDO-driving.up",
        "Verizon-LTE-short.up",
    }
    assert len(downlinks) == 4 and all(e.direction is Direction.DOWN for e in downlinks)


def test_sniffing_recognises_each_real_format(traces_dir: Path) -> None:
    assert (
        sniff_format(traces_dir / "mahimahi-cellular" / "Verizon-LTE-short.down")
        is TraceFormat.MAHIMAHI
    )
    assert sniff_format(traces_dir / "norway-hsdpa" / "norway_bus_10") is TraceFormat.PAIRS
    assert (
        sniff_format(traces_dir / "fcc-broadband" / "trace_866_http---www.amazon.com")
        is TraceFormat.PAIRS
    )
    assert sniff_format(traces_dir / "oboe" / "oboe_trace_1.txt") is TraceFormat.PAIRS
    assert sniff_format(traces_dir / "ucc-5g" / "B_2019.12.16_11.49.59.csv") is TraceFormat.UCC_5G


def test_real_mahimahi_round_trip_keeps_the_rate(traces_dir: Path, tmp_path: Path) -> None:
    original = read_mahimahi(traces_dir / "mahimahi-cellular" / "Verizon-LTE-short.down")
    exported = tmp_path / "again.down"
    exported.write_text(to_mahimahi(original))
    again = read_mahimahi(exported)
    assert again.duration_s == original.duration_s
    one_packet_mbps = MAHIMAHI_PACKET_BYTES * 8 / original.duration_s / 1e6
    assert abs(again.mean_mbps - original.mean_mbps) <= 2 * one_packet_mbps


def test_real_5g_and_oboe_round_trip_through_mahimahi(traces_dir: Path, tmp_path: Path) -> None:
    for path in (
        traces_dir / "ucc-5g" / "B_2020.02.27_17.30.15.csv",
        traces_dir / "oboe" / "oboe_trace_1.txt",
    ):
        trace = read_trace(path)
        exported = tmp_path / (path.name + ".down")
        exported.write_text(to_mahimahi(trace))
        again = read_mahimahi(exported)
        assert again.mean_mbps == pytest.approx(trace.mean_mbps, rel=0.002)
        assert again.duration_s == pytest.approx(trace.duration_s, abs=0.001)


# --- exact small cases -------------------------------------------------------------------------


def test_pairs_follow_pensieves_convention(tmp_path: Path) -> None:
    path = tmp_path / "pairs"
    path.write_text("1.0\t9.0\n2.0\t3.0\n4.0\t6.0\n")
    trace = read_pairs(path)
    # The first line only sets the origin; 3 Mbit/s over (1, 2], 6 over (2, 4].
    assert trace.starts_s.tolist() == [0.0, 1.0]
    assert trace.mbps.tolist() == [3.0, 6.0]
    assert trace.duration_s == 3.0
    assert trace.mean_mbps == pytest.approx(5.0)
    assert read_pairs(path, unit=PairUnit.MBYTES_PER_S).mbps.tolist() == [24.0, 48.0]


def test_mahimahi_bins_count_packets(tmp_path: Path) -> None:
    path = tmp_path / "link.down"
    path.write_text("0\n0\n50\n150\n200\n")  # 3 packets in [0, 100) ms, 2 in [100, 200]
    trace = read_mahimahi(path, bin_ms=100)
    assert trace.duration_s == 0.2
    assert trace.mbps.tolist() == pytest.approx([3 * 12000 / 0.1 / 1e6, 2 * 12000 / 0.1 / 1e6])
    assert trace.mean_mbps == pytest.approx(5 * 12000 / 0.2 / 1e6)


def test_to_mahimahi_of_a_constant_link() -> None:
    text = to_mahimahi(Trace.constant(12.0, 1.0))  # 12 Mbit/s = one 1500-byte packet per ms
    stamps = [int(x) for x in text.split()]
    assert stamps == list(range(1, 1001))


def test_ucc_rows_average_within_a_second_and_hold_across_gaps(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    rows = [
        ucc_row("2020.01.01_10.00.00", "1000"),
        ucc_row("2020.01.01_10.00.00", "3000"),
        ucc_row("2020.01.01_10.00.01", "4000"),
        ucc_row("2020.01.01_10.00.04", "500"),
    ]
    path.write_text("\n".join([UCC_HEADER, *rows]) + "\n")
    trace = read_ucc_5g(path)
    assert trace.starts_s.tolist() == [0.0, 1.0, 4.0]
    assert trace.mbps.tolist() == [2.0, 4.0, 0.5]
    assert trace.duration_s == 5.0


def test_summary_statistics_of_a_step_trace() -> None:
    trace = Trace.steps([(2.0, 0.0), (6.0, 4.0), (2.0, 10.0)])
    summary = summarize(trace)
    assert summary.mean_mbps == pytest.approx((24 + 20) / 10)
    assert summary.outage_share == pytest.approx(0.2)
    assert (summary.min_mbps, summary.median_mbps, summary.max_mbps) == (0.0, 4.0, 10.0)
    assert summary.p5_mbps == 0.0 and summary.p95_mbps == 10.0
    assert trace.rate_at(11.0) == 0.0 and trace.rate_at(3.0) == 4.0  # loops


# --- malformed files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0\t1\n1\tfast\n", r":2: throughput 'fast' is not a number"),
        ("0\t1\n1\t2\t3\n", r":2: expected 2 columns"),
        ("0\t1\n0\t2\n", r":2: time 0.0 does not increase"),
        ("0\t1\n1\t-2\n", r":2: negative throughput"),
        ("0\t1\n", r"needs at least 2 samples"),
        ("0\t1\n1\tnan\n", r"is not finite"),
    ],
)
def test_bad_pair_files_name_the_defect(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(TraceFormatError, match=message):
        read_pairs(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5\n3\n", r":2: timestamp 3 goes back"),
        ("1\n2.5\n", r":2: expected a millisecond timestamp"),
        ("0\n0\n", r"no packet timestamps after 0 ms"),
        ("", r"no packet timestamps"),
    ],
)
def test_bad_mahimahi_files_name_the_defect(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.down"
    path.write_text(text)
    with pytest.raises(TraceFormatError, match=message):
        read_mahimahi(path)


def test_bad_ucc_files_name_the_defect(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Timestamp,Speed\n2020.01.01_10.00.00,0\n")
    with pytest.raises(TraceFormatError, match="missing the Timestamp and DL_bitrate"):
        read_ucc_5g(path)
    path.write_text(UCC_HEADER + "\n" + ucc_row("yesterday", "10") + "\n")
    with pytest.raises(TraceFormatError, match=r":2: Timestamp 'yesterday'"):
        read_ucc_5g(path)
    path.write_text(UCC_HEADER + "\n" + ucc_row("2020.01.01_10.00.00", "-") + "\n")
    with pytest.raises(TraceFormatError, match=r":2: DL_bitrate '-' is not a number"):
        read_ucc_5g(path)
    path.write_text(UCC_HEADER + "\n")
    with pytest.raises(TraceFormatError, match="no data rows"):
        read_ucc_5g(path)


def test_binary_and_unknown_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "blob"
    binary.write_bytes(b"\x00\xff\xfe" * 10)
    with pytest.raises(TraceFormatError, match="unknown trace format"):
        read_trace(binary)
    with pytest.raises(TraceFormatError, match="not a text file"):
        read_pairs(binary)
    with pytest.raises(TraceFormatError, match="no such trace"):
        build_catalog(tmp_path / "missing")


def test_in_memory_form_rejects_inconsistent_arrays() -> None:
    with pytest.raises(TraceFormatError, match="rise from 0"):
        Trace("x", "t", np.array([0.0, 2.0, 1.0]), np.ones(3), 5.0)
    with pytest.raises(TraceFormatError, match="non-negative"):
        Trace("x", "t", np.array([0.0]), np.array([-1.0]), 5.0)
    with pytest.raises(TraceFormatError, match="positive length"):
        Trace.steps([(0.0, 1.0)])
