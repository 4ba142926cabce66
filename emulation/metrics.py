"""Session and scheme metrics as Puffer defines them (StanfordSNR/puffer-statistics).

Per stream (``csv_to_stream_stats.cc``): startup delay = time from session start to first play;
watch time = first play to the end of playback; stall time = rebuffering after startup. A stream
whose buffer stays empty for more than ``STUCK_S`` is truncated at the start of that stall (the
viewer has most likely left); a stream that never started or watched under ``MIN_WATCH_S`` is
excluded. Mean quality per stream is the mean over its chunks of the raw SSIM index (chunks above
0.99999 skipped), or of PSNR dB when the ladder measured no SSIM; variation is the mean absolute
dB difference between consecutive chunks.

Per scheme (``stream_to_scheme_stats.cc``): stall ratio = total stall / total watch time; mean
quality = watch-time-weighted mean of the per-stream means, converted to dB afterwards; quality
variation = plain mean over streams. Intervals: +-2 (weighted) standard errors for quality,
variation and startup; for the stall ratio a seeded bootstrap over streams (95% percentile
interval). Puffer's own stall-ratio interval resamples within log2 watch-time bins, which matters
for wildly mixed real watch times; emulated sessions all have about the same length, so plain
stream resampling is the equivalent here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emulation.fast import SessionResult
from emulation.ladder import SimLadder, ssim_to_db

MIN_WATCH_S = 4.0  # s; puffer-statistics' smallest watch-time bin (2^2 s)
STUCK_S = 20.0  # s; buffer empty longer than this truncates the stream
SSIM_SKIP_ABOVE = 0.99999  # Puffer skips (near-)lossless chunks in the SSIM mean
SLOW_MBPS = 6.0  # Mbit/s; Puffer's "slow stream" bound on mean delivery rate
BOOTSTRAP_SAMPLES = 2000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class StreamMetrics:
    """Puffer's per-stream statistics of one session (plus our bitrate and switch counts)."""

    trace: str
    source: str
    abr: str
    valid: bool  # started and watched at least MIN_WATCH_S
    truncated: bool  # cut at a stall longer than STUCK_S
    startup_s: float
    watch_s: float
    stall_s: float
    stall_ratio: float
    stalls: int
    mean_quality_db: float
    mean_ssim: float  # raw SSIM index mean (nan when the ladder has no SSIM)
    quality_variation_db: float
    mean_bitrate_kbps: float
    switches: int
    prefix_bytes: int
    delivery_mbps: (
        float  # mean per-chunk delivery rate while bytes flowed (Puffer: tcpi_delivery_rate)
    )
    slow: bool
    chunks: int

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def stream_metrics(result: SessionResult, ladder: SimLadder) -> StreamMetrics:
    """Puffer's per-stream statistics of one simulated session."""
    log = result.chunks
    startup = result.startup_s
    end = result.end_s
    truncated = False
    stalls = [(s, e) for s, e in result.stalls if e > s]
    for start, stop in stalls:
        if stop - start > STUCK_S:
            end, truncated = start, True
            break
    stalls = [(s, min(e, end)) for s, e in stalls if s < end]
    t_app = np.asarray([t if t is not None else math.inf for t in log["tApp"]], dtype=np.float64)
    played = t_app <= end if startup is not None else np.zeros(len(t_app), dtype=bool)
    levels = np.asarray(log["level"], dtype=np.int64)[played]
    chunk_ids = np.asarray(log["chunk"], dtype=np.int64)[played]
    quality = np.asarray(log["quality"], dtype=np.float64)[played]
    if ladder.ssim is not None:
        ssim = ladder.ssim[levels, chunk_ids]
        kept = ssim[ssim <= SSIM_SKIP_ABOVE]
        mean_ssim = float(kept.mean()) if kept.size else math.nan
        mean_db = float(ssim_to_db(mean_ssim)) if kept.size else math.nan
    else:
        mean_ssim = math.nan
        mean_db = float(quality.mean()) if quality.size else math.nan
    variation = float(np.abs(np.diff(quality)).mean()) if quality.size > 1 else 0.0
    media_s = float(ladder.chunk_s[chunk_ids].sum())
    bits = float(np.asarray(log["bytes"], dtype=np.float64)[played].sum() * 8)
    rates = np.asarray(log["deliveryMbps"], dtype=np.float64)
    delivery = float(rates.mean()) if rates.size else math.nan
    watch = max(0.0, end - startup) if startup is not None else 0.0
    stall = float(sum(e - s for s, e in stalls))
    return StreamMetrics(
        trace=result.trace,
        source=result.source,
        abr=result.abr,
        valid=startup is not None and watch >= MIN_WATCH_S,
        truncated=truncated,
        startup_s=startup if startup is not None else math.nan,
        watch_s=watch,
        stall_s=stall,
        stall_ratio=stall / watch if watch > 0 else math.nan,
        stalls=len(stalls),
        mean_quality_db=mean_db,
        mean_ssim=mean_ssim,
        quality_variation_db=variation,
        mean_bitrate_kbps=bits / media_s / 1000 if media_s > 0 else math.nan,
        switches=int((np.diff(levels) != 0).sum()) if levels.size > 1 else 0,
        prefix_bytes=int(np.asarray(log["prefixBytes"], dtype=np.int64)[played].sum()),
        delivery_mbps=delivery,
        slow=bool(delivery <= SLOW_MBPS),
        chunks=int(played.sum()),
    )


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class SchemeSummary:
    """Puffer's per-scheme statistics of one ABR over a set of streams."""

    abr: str
    sessions: int  # valid streams
    excluded: int  # never started or watched under MIN_WATCH_S
    truncated: int
    stall_ratio: Interval
    mean_quality_db: Interval
    quality_variation_db: Interval
    startup_s: Interval
    mean_bitrate_kbps: float
    switches_per_min: float
    watch_h: float
    slow_share: float  # share of watch time on slow streams

    def to_row(self) -> dict[str, Any]:
        """Flat row for summary.csv (the required columns first)."""
        row: dict[str, Any] = {
            "abr": self.abr,
            "sessions": self.sessions,
            "stall_ratio": self.stall_ratio.value,
            "mean_quality_db": self.mean_quality_db.value,
            "quality_variation_db": self.quality_variation_db.value,
            "startup_s": self.startup_s.value,
        }
        for name in ("stall_ratio", "mean_quality_db", "quality_variation_db", "startup_s"):
            interval: Interval = getattr(self, name)
            row[f"{name}_low"] = interval.low
            row[f"{name}_high"] = interval.high
        row.update(
            excluded=self.excluded,
            truncated=self.truncated,
            mean_bitrate_kbps=self.mean_bitrate_kbps,
            switches_per_min=self.switches_per_min,
            watch_h=self.watch_h,
            slow_share=self.slow_share,
        )
        return row


def _mean_interval(values: np.ndarray) -> Interval:
    if values.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
    return Interval(mean, mean - 2 * se, mean + 2 * se)


def _weighted_interval(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted mean and its standard error: sqrt(sum w^2 (x - mean)^2) / sum w."""
    total = weights.sum()
    mean = float(np.dot(weights, values) / total)
    se = float(math.sqrt(np.dot(weights**2, (values - mean) ** 2)) / total)
    return mean, se


def stall_ratio_interval(stall_s: np.ndarray, watch_s: np.ndarray, seed: int = 0) -> Interval:
    """Total stall / total watch, with a seeded bootstrap over streams."""
    if watch_s.size == 0 or watch_s.sum() <= 0:
        return Interval(math.nan, math.nan, math.nan)
    ratio = float(stall_s.sum() / watch_s.sum())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, watch_s.size, size=(BOOTSTRAP_SAMPLES, watch_s.size))
    samples = stall_s[picks].sum(axis=1) / watch_s[picks].sum(axis=1)
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(ratio, float(low), float(high))


def scheme_summary(
    abr: str, streams: list[StreamMetrics], *, ssim: bool, seed: int = 0
) -> SchemeSummary:
    """Aggregate one ABR's streams the way puffer-statistics does."""
    valid = [s for s in streams if s.abr == abr and s.valid]
    everyone = [s for s in streams if s.abr == abr]
    watch = np.array([s.watch_s for s in valid])
    stall = np.array([s.stall_s for s in valid])
    nan = Interval(math.nan, math.nan, math.nan)
    if not valid:
        return SchemeSummary(
            abr, 0, len(everyone), 0, nan, nan, nan, nan, math.nan, math.nan, 0.0, math.nan
        )
    raw = np.array([s.mean_ssim if ssim else s.mean_quality_db for s in valid])
    has = np.isfinite(raw)
    if has.any():
        mean, se = _weighted_interval(raw[has], watch[has])
        if ssim:  # mean of the raw index first, then dB (the interval's ends are converted too)
            quality = Interval(
                float(ssim_to_db(mean)),
                float(ssim_to_db(mean - 2 * se)),
                float(ssim_to_db(min(mean + 2 * se, 1.0))),
            )
        else:
            quality = Interval(mean, mean - 2 * se, mean + 2 * se)
    else:
        quality = nan
    switches = sum(s.switches for s in valid)
    return SchemeSummary(
        abr=abr,
        sessions=len(valid),
        excluded=len(everyone) - len(valid),
        truncated=sum(s.truncated for s in valid),
        stall_ratio=stall_ratio_interval(stall, watch, seed),
        mean_quality_db=quality,
        quality_variation_db=_mean_interval(np.array([s.quality_variation_db for s in valid])),
        startup_s=_mean_interval(np.array([s.startup_s for s in valid])),
        mean_bitrate_kbps=float(np.dot([s.mean_bitrate_kbps for s in valid], watch) / watch.sum()),
        switches_per_min=float(switches / (watch.sum() / 60.0)),
        watch_h=float(watch.sum() / 3600.0),
        slow_share=float(watch[[s.slow for s in valid]].sum() / watch.sum()),
    )


def summaries_by_source(
    streams: list[StreamMetrics], abrs: list[str], *, ssim: bool, seed: int = 0
) -> list[dict[str, Any]]:
    """One summary row per (trace source, ABR)."""
    rows = []
    for source in sorted({s.source for s in streams}):
        subset = [s for s in streams if s.source == source]
        for abr in abrs:
            rows.append(
                {"source": source, **scheme_summary(abr, subset, ssim=ssim, seed=seed).to_row()}
            )
    return rows
