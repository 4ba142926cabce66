"""Network throughput traces: readers for every format we replay, one in-memory form, mahimahi export.

In memory a trace is a piecewise-constant downlink rate: segment ``i`` carries
``mbps[i]`` (10^6 bit/s) from ``starts_s[i]`` until ``starts_s[i + 1]`` (the last one until
``duration_s``). Emulators loop a trace when a session outlasts it, as ``mm-link`` does.

Formats (see ``../shared/traces/README.md``):

- **mahimahi** (``mm-link``): one integer per line, a millisecond timestamp; each line is one
  opportunity to deliver a 1500-byte packet; the loop period is the last timestamp. Read by
  counting opportunities in ``MAHIMAHI_BIN_MS`` bins.
- **pairs** (Pensieve/Norway/FCC/Oboe/Puffer): ``<time_s> <throughput>`` per line. The value on
  line ``i`` covers the interval from line ``i-1``'s time to ``t_i`` (Pensieve's convention), so
  the first line only sets the origin.
- **ucc-5g** (G-NetTrack CSV): ``Timestamp`` (``YYYY.MM.DD_HH.MM.SS``, 1 s resolution) and
  ``DL_bitrate`` in kbit/s. Rows in the same second are averaged; a value holds until the next
  logged second (skipped seconds keep the last value); the last second lasts 1 s.

Puffer unit caveat: the Puffer "cooked" traces are labelled Mbit/s but were produced by dividing
a bytes-per-second delivery rate by 1e6, so the stored value is most likely MB/s. The catalogue
reads the ``puffer`` source with ``PairUnit.MBYTES_PER_S`` (x8) unless told otherwise.
"""

from __future__ import annotations

import csv
import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from common.errors import UserError

MAHIMAHI_PACKET_BYTES = 1500  # bytes per delivery opportunity (mm-link's MTU)
MAHIMAHI_BIN_MS = 100  # ms; width of the bins packet opportunities are counted in
UCC_SAMPLE_S = 1.0  # s; G-NetTrack logs one row per second
UCC_TIME_FORMAT = "%Y.%m.%d_%H.%M.%S"
MAX_TRACE_BYTES = 64 * 1024 * 1024  # bytes; refuse anything larger than any real trace file


class TraceFormatError(UserError, ValueError):
    """A trace file that cannot be read; the message names the file, line and defect."""


class TraceFormat(enum.StrEnum):
    MAHIMAHI = "mahimahi"
    PAIRS = "pairs"
    UCC_5G = "ucc-5g"


class PairUnit(enum.StrEnum):
    """Unit of the second column of a "time throughput" pair file."""

    MBITS_PER_S = "Mbps"  # 10^6 bit/s, as Pensieve/Norway/FCC/Oboe label theirs
    MBYTES_PER_S = "MBps"  # 10^6 byte/s: multiply by 8 (the Puffer caveat)

    @property
    def to_mbps(self) -> float:
        return 8.0 if self is PairUnit.MBYTES_PER_S else 1.0


@dataclass(frozen=True)
class Trace:
    """A downlink rate over time: ``mbps[i]`` holds from ``starts_s[i]`` to the next start."""

    name: str
    source: str
    starts_s: np.ndarray  # float64, strictly increasing, starts_s[0] == 0
    mbps: np.ndarray  # float64, >= 0, same length
    duration_s: float

    def __post_init__(self) -> None:
        starts, rates = self.starts_s, self.mbps
        if starts.ndim != 1 or starts.shape != rates.shape or len(starts) == 0:
            raise TraceFormatError(f"{self.name}: starts and rates must be equal-length 1-D arrays")
        if starts[0] != 0.0 or np.any(np.diff(starts) <= 0) or self.duration_s <= starts[-1]:
            raise TraceFormatError(
                f"{self.name}: segment starts must rise from 0 and end before the duration"
            )
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            raise TraceFormatError(f"{self.name}: rates must be finite and non-negative")

    @property
    def segment_s(self) -> np.ndarray:
        """Length of each segment in seconds."""
        return np.diff(np.append(self.starts_s, self.duration_s))

    @property
    def mean_mbps(self) -> float:
        """Time-weighted mean rate over one loop."""
        return float(np.dot(self.mbps, self.segment_s) / self.duration_s)

    def rate_at(self, t_s: float) -> float:
        """Rate in Mbit/s at time ``t_s`` (looping)."""
        index = int(np.searchsorted(self.starts_s, t_s % self.duration_s, side="right")) - 1
        return float(self.mbps[index])

    @classmethod
    def constant(cls, mbps: float, duration_s: float, name: str = "constant") -> Trace:
        """A flat link (tests, calibration)."""
        return cls(name, "synthetic", np.zeros(1), np.array([float(mbps)]), float(duration_s))

    @classmethod
    def steps(cls, steps: Iterable[tuple[float, float]], name: str = "steps") -> Trace:
        """A trace from ``(seconds, mbps)`` steps laid end to end."""
        pairs = [(float(length), float(rate)) for length, rate in steps]
        lengths = np.array([length for length, _ in pairs])
        if len(lengths) == 0 or np.any(lengths <= 0):
            raise TraceFormatError(f"{name}: every step needs a positive length")
        starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        return cls(
            name, "synthetic", starts, np.array([rate for _, rate in pairs]), float(lengths.sum())
        )


@dataclass(frozen=True)
class TraceSummary:
    """Summary statistics of one trace (rates in Mbit/s, weighted by time)."""

    name: str
    source: str
    duration_s: float
    mean_mbps: float
    std_mbps: float
    p5_mbps: float
    median_mbps: float
    p95_mbps: float
    min_mbps: float
    max_mbps: float
    outage_share: float  # share of time with a rate under OUTAGE_MBPS


OUTAGE_MBPS = 0.01  # Mbit/s; below this a link counts as out


def summarize(trace: Trace) -> TraceSummary:
    """Time-weighted statistics of a trace."""
    weights = trace.segment_s
    order = np.argsort(trace.mbps, kind="stable")
    cumulative = np.cumsum(weights[order]) / trace.duration_s

    def quantile(q: float) -> float:
        return float(trace.mbps[order][min(int(np.searchsorted(cumulative, q)), len(order) - 1)])

    mean = trace.mean_mbps
    variance = float(np.dot(weights, (trace.mbps - mean) ** 2) / trace.duration_s)
    return TraceSummary(
        name=trace.name,
        source=trace.source,
        duration_s=trace.duration_s,
        mean_mbps=mean,
        std_mbps=math.sqrt(variance),
        p5_mbps=quantile(0.05),
        median_mbps=quantile(0.5),
        p95_mbps=quantile(0.95),
        min_mbps=float(trace.mbps.min()),
        max_mbps=float(trace.mbps.max()),
        outage_share=float(weights[trace.mbps < OUTAGE_MBPS].sum() / trace.duration_s),
    )


def _read_lines(path: Path) -> list[str]:
    size = path.stat().st_size
    if size > MAX_TRACE_BYTES:
        raise TraceFormatError(
            f"{path}: {size} bytes is larger than any trace ({MAX_TRACE_BYTES} max)"
        )
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise TraceFormatError(
            f"{path}: not a text file ({error.reason} at byte {error.start})"
        ) from None


def _number(text: str, path: Path, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceFormatError(f"{path}:{line}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceFormatError(f"{path}:{line}: {what} {text!r} is not finite")
    return value


def read_mahimahi(path: Path, *, source: str = "mahimahi", bin_ms: int = MAHIMAHI_BIN_MS) -> Trace:
    """Read an ``mm-link`` packet trace into ``bin_ms`` bins (mean rate preserved exactly)."""
    path = Path(path)
    stamps: list[int] = []
    for number, raw in enumerate(_read_lines(path), start=1):
        text = raw.strip()
        if not text:
            continue
        if not text.isdigit():
            raise TraceFormatError(
                f"{path}:{number}: expected a millisecond timestamp, got {text!r}"
            )
        stamp = int(text)
        if stamps and stamp < stamps[-1]:
            raise TraceFormatError(
                f"{path}:{number}: timestamp {stamp} goes back (previous {stamps[-1]})"
            )
        stamps.append(stamp)
    if not stamps or stamps[-1] <= 0:
        raise TraceFormatError(
            f"{path}: no packet timestamps after 0 ms (the loop period is the last one)"
        )
    period_ms = stamps[-1]
    bins = math.ceil(period_ms / bin_ms)
    # A packet at exactly the period belongs to the last bin (mm-link delivers it before looping).
    indices = np.minimum(np.asarray(stamps, dtype=np.int64) // bin_ms, bins - 1)
    counts = np.bincount(indices, minlength=bins).astype(np.float64)
    widths_s = np.full(bins, bin_ms / 1000.0)
    widths_s[-1] = (period_ms - (bins - 1) * bin_ms) / 1000.0
    mbps = counts * MAHIMAHI_PACKET_BYTES * 8 / widths_s / 1e6
    starts = np.arange(bins, dtype=np.float64) * (bin_ms / 1000.0)
    return Trace(path.name, source, starts, mbps, period_ms / 1000.0)


def read_pairs(
    path: Path, *, source: str = "pairs", unit: PairUnit = PairUnit.MBITS_PER_S
) -> Trace:
    """Read a ``<time_s> <throughput>`` file (Pensieve convention; ``unit`` of column two)."""
    path = Path(path)
    times: list[float] = []
    values: list[float] = []
    for number, raw in enumerate(_read_lines(path), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise TraceFormatError(
                f"{path}:{number}: expected 2 columns (time, throughput), got {len(fields)}"
            )
        t = _number(fields[0], path, number, "time")
        v = _number(fields[1], path, number, "throughput")
        if v < 0:
            raise TraceFormatError(f"{path}:{number}: negative throughput {v}")
        if times and t <= times[-1]:
            raise TraceFormatError(
                f"{path}:{number}: time {t} does not increase (previous {times[-1]})"
            )
        times.append(t)
        values.append(v)
    if len(times) < 2:
        raise TraceFormatError(
            f"{path}: needs at least 2 samples (the first only sets the origin), got {len(times)}"
        )
    times_s = np.asarray(times)
    starts = times_s[:-1] - times_s[0]
    mbps = np.asarray(values[1:]) * unit.to_mbps
    return Trace(path.name, source, starts, mbps, float(times_s[-1] - times_s[0]))


def read_ucc_5g(path: Path, *, source: str = "ucc-5g") -> Trace:
    """Read a G-NetTrack CSV's ``DL_bitrate`` (kbit/s) into a per-second trace."""
    path = Path(path)
    lines = _read_lines(path)
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or "Timestamp" not in header or "DL_bitrate" not in header:
        raise TraceFormatError(
            f"{path}: missing the Timestamp and DL_bitrate columns of a G-NetTrack CSV"
        )
    time_col, rate_col = header.index("Timestamp"), header.index("DL_bitrate")
    seconds: list[float] = []
    rates: list[list[float]] = []
    origin: datetime | None = None
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise TraceFormatError(f"{path}:{number}: {len(row)} fields, header has {len(header)}")
        try:
            stamp = datetime.strptime(row[time_col], UCC_TIME_FORMAT)
        except ValueError:
            raise TraceFormatError(
                f"{path}:{number}: Timestamp {row[time_col]!r} is not YYYY.MM.DD_HH.MM.SS"
            ) from None
        kbps = _number(row[rate_col], path, number, "DL_bitrate")
        if kbps < 0:
            raise TraceFormatError(f"{path}:{number}: negative DL_bitrate {kbps}")
        origin = origin or stamp
        second = (stamp - origin).total_seconds()
        if seconds and second < seconds[-1]:
            raise TraceFormatError(f"{path}:{number}: Timestamp goes back in time")
        if seconds and second == seconds[-1]:
            rates[-1].append(kbps)
        else:
            seconds.append(second)
            rates.append([kbps])
    if not seconds:
        raise TraceFormatError(f"{path}: no data rows")
    mbps = np.array([sum(group) / len(group) for group in rates]) / 1000.0
    return Trace(path.name, source, np.asarray(seconds), mbps, seconds[-1] + UCC_SAMPLE_S)


def sniff_format(path: Path) -> TraceFormat:
    """Guess a file's format from its first non-empty line."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="replace")
    first = next((line.strip() for line in head.splitlines() if line.strip()), "")
    if first.startswith("Timestamp,") or ",DL_bitrate," in first:
        return TraceFormat.UCC_5G
    if first.isdigit():
        return TraceFormat.MAHIMAHI
    if len(first.split()) == 2:
        return TraceFormat.PAIRS
    raise TraceFormatError(f"{path}: unknown trace format (first line {first[:60]!r})")


def read_trace(
    path: Path,
    *,
    fmt: TraceFormat | None = None,
    unit: PairUnit = PairUnit.MBITS_PER_S,
    source: str | None = None,
) -> Trace:
    """Read any supported trace file (format sniffed unless given)."""
    path = Path(path)
    fmt = fmt or sniff_format(path)
    src = source or fmt.value
    if fmt is TraceFormat.MAHIMAHI:
        return read_mahimahi(path, source=src)
    if fmt is TraceFormat.PAIRS:
        return read_pairs(path, source=src, unit=unit)
    return read_ucc_5g(path, source=src)


def to_mahimahi(trace: Trace) -> str:
    """The trace as an ``mm-link`` file: 1500-byte opportunities, evenly spread in each segment.

    Opportunities are placed where the cumulative delivered bytes cross each 1500-byte multiple,
    so the file's mean rate matches the trace's to within one packet over the loop.
    """
    cumulative_bits = np.concatenate([[0.0], np.cumsum(trace.mbps * 1e6 * trace.segment_s)])
    bounds_s = np.append(trace.starts_s, trace.duration_s)
    packet_bits = MAHIMAHI_PACKET_BYTES * 8
    packets = int(cumulative_bits[-1] // packet_bits)
    targets = (np.arange(1, packets + 1)) * packet_bits
    # Invert the piecewise-linear cumulative-bits curve at each packet boundary.
    times_s = np.interp(targets, cumulative_bits, bounds_s)
    stamps = np.maximum(np.ceil(times_s * 1000.0 - 1e-9).astype(np.int64), 0)
    period_ms = max(1, round(trace.duration_s * 1000.0))
    stamps = np.minimum(stamps, period_ms)
    if len(stamps) == 0 or stamps[-1] != period_ms:
        # mm-link's loop period is the last timestamp: close the loop with one opportunity.
        stamps = np.append(stamps, period_ms)
    return "\n".join(str(int(s)) for s in stamps) + "\n"
