"""A Puffer-style report of *real* sessions, read from the media server's telemetry database.

Each session (one ``hello`` to the next or to the socket's close) is one stream. Its
statistics follow ``emulation.metrics`` (Puffer's ``csv_to_stream_stats``): startup delay
= the ``startup`` report's time minus the session's start; watch time = startup to the last
report; stall time = the player's stall seconds after startup; a stall (``rebuffer`` with no
``play`` after it) longer than ``STUCK_S`` truncates the stream at its start. Quality per
played (acked) chunk comes from the channel's manifest (SSIM index, else PSNR dB; NaN when
the ladder measured none or its folder is not given). The per-ABR summary with its
intervals is ``emulation.metrics.scheme_summary`` itself, the code ``promptus emulate`` uses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emulation.ladder import SimLadder, from_manifest, ssim_to_db
from emulation.metrics import (
    MIN_WATCH_S,
    SLOW_MBPS,
    SSIM_SKIP_ABOVE,
    STUCK_S,
    SchemeSummary,
    StreamMetrics,
    scheme_summary,
)
from prompts.manifest import Manifest, ManifestError, load_manifest
from server.telemetry_db import Backend

SOURCE = "telemetry"  # StreamMetrics.source of a real session
UNKNOWN_ABR = "unknown"  # sessions whose hello named no ABR


@dataclass(frozen=True)
class SessionLog:
    """One session's rows: its ``sessions`` row, deliveries and reports (each by time)."""

    session: dict[str, Any]
    deliveries: list[dict[str, Any]]
    reports: list[dict[str, Any]]


@dataclass(frozen=True)
class ChannelFacts:
    """What the report needs of a channel's ladder: seconds and quality of each chunk."""

    chunk_s: float
    ladder: SimLadder | None  # None: the ladder has no measured quality

    @classmethod
    def of(cls, manifest: Manifest, name: str) -> ChannelFacts:
        stream = manifest.stream
        try:
            ladder: SimLadder | None = from_manifest(manifest, name)
        except ManifestError:
            ladder = None
        return cls(stream.chunk_frames / stream.fps, ladder)

    def quality(self, level: int, chunk: int) -> tuple[float, float]:
        """(quality dB, raw SSIM or NaN) of a chunk; NaNs when unknown."""
        ladder = self.ladder
        if ladder is None or level >= ladder.levels or chunk >= ladder.quality_db.shape[1]:
            return math.nan, math.nan
        ssim = float(ladder.ssim[level, chunk]) if ladder.ssim is not None else math.nan
        return float(ladder.quality_db[level, chunk]), ssim


async def load_sessions(backend: Backend, since: float) -> list[SessionLog]:
    """The sessions that started at ``since`` or later, with their rows."""
    sessions = await backend.fetch("sessions", since)
    deliveries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    reports: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await backend.fetch("deliveries", since):
        deliveries[row["session_id"]].append(row)
    for row in await backend.fetch("reports", since):
        reports[row["session_id"]].append(row)
    return [SessionLog(s, deliveries[s["id"]], reports[s["id"]]) for s in sessions]


def channel_facts(media: Path | None, channels: set[str]) -> dict[str, ChannelFacts]:
    """Facts of each channel whose ladder is in ``media`` (others are left out)."""
    facts: dict[str, ChannelFacts] = {}
    if media is None:
        return facts
    for name in sorted(channels):
        try:
            facts[name] = ChannelFacts.of(load_manifest(media / name), name)
        except (ManifestError, OSError):
            continue
    return facts


def session_metrics(log: SessionLog, facts: ChannelFacts | None) -> StreamMetrics:
    """Puffer's per-stream statistics of one real session."""
    session, reports = log.session, log.reports
    startup_report = next((r for r in reports if r["event"] == "startup"), None)
    started_at = float(session["started_at"])
    end = float(reports[-1]["at"]) if reports else started_at
    truncated = False
    if startup_report is not None:
        for begin, until in _stalls(reports, end):
            if begin >= float(startup_report["at"]) and until - begin > STUCK_S:
                end, truncated = begin, True
                break
    played = [
        d
        for d in log.deliveries
        if d["acked_at"] is not None and startup_report is not None and d["acked_at"] <= end
    ]
    quality_db, ssim = _chunk_qualities(played, facts)
    kept = ssim[np.isfinite(ssim) & (ssim <= SSIM_SKIP_ABOVE)]
    mean_ssim = float(kept.mean()) if kept.size else math.nan
    if facts is not None and facts.ladder is not None and facts.ladder.ssim is not None:
        mean_db = float(ssim_to_db(mean_ssim)) if kept.size else math.nan
    else:
        mean_db = float(np.nanmean(quality_db)) if np.isfinite(quality_db).any() else math.nan
    watch = max(0.0, end - float(startup_report["at"])) if startup_report is not None else 0.0
    stall = _stall_seconds(reports, startup_report, end)
    levels = [int(d["level"]) for d in played]
    media_s = len(played) * facts.chunk_s if facts is not None else math.nan
    rates = [
        d["bytes"] * 8 / (d["acked_at"] - d["requested_at"]) / 1e6
        for d in played
        if d["acked_at"] > d["requested_at"]
    ]
    delivery = float(np.mean(rates)) if rates else math.nan
    diffs = np.abs(np.diff(quality_db))
    return StreamMetrics(
        trace=str(session["id"]),
        source=SOURCE,
        abr=session["abr"] or UNKNOWN_ABR,
        valid=startup_report is not None and watch >= MIN_WATCH_S,
        truncated=truncated,
        startup_s=float(startup_report["at"]) - started_at if startup_report else math.nan,
        watch_s=watch,
        stall_s=stall,
        stall_ratio=stall / watch if watch > 0 else math.nan,
        stalls=_stall_count(reports, startup_report, end),
        mean_quality_db=mean_db,
        mean_ssim=mean_ssim,
        quality_variation_db=float(np.nanmean(diffs)) if np.isfinite(diffs).any() else 0.0,
        mean_bitrate_kbps=(
            sum(d["bytes"] for d in played) * 8 / media_s / 1000 if media_s > 0 else math.nan
        ),
        switches=sum(a != b for a, b in zip(levels, levels[1:], strict=False)),
        prefix_bytes=sum(int(d["prefix_bytes"]) for d in played),
        delivery_mbps=delivery,
        slow=bool(delivery <= SLOW_MBPS),
        chunks=len(played),
    )


def summarise(
    logs: list[SessionLog], facts: dict[str, ChannelFacts], *, seed: int = 0
) -> tuple[list[StreamMetrics], list[SchemeSummary], str]:
    """(per-session metrics, per-ABR summaries, quality metric) of the sessions."""
    streams = [session_metrics(log, facts.get(log.session["channel"])) for log in logs]
    channels = {log.session["channel"] for log in logs}
    ssim = bool(channels) and all(
        name in facts and (ladder := facts[name].ladder) is not None and ladder.ssim is not None
        for name in channels
    )
    abrs = sorted({s.abr for s in streams})
    summaries = [scheme_summary(abr, streams, ssim=ssim, seed=seed) for abr in abrs]
    return streams, summaries, "ssim_db" if ssim else "psnr_db"


def _stalls(reports: list[dict[str, Any]], end: float) -> list[tuple[float, float]]:
    """(start, end) of each stall: a ``rebuffer`` report to the next ``play`` (or the end)."""
    stalls = []
    begin: float | None = None
    for report in reports:
        if report["event"] == "rebuffer" and begin is None:
            begin = float(report["at"])
        elif report["event"] == "play" and begin is not None:
            stalls.append((begin, float(report["at"])))
            begin = None
    if begin is not None:
        stalls.append((begin, end))
    return stalls


def _last_before(reports: list[dict[str, Any]], end: float) -> dict[str, Any] | None:
    return next((r for r in reversed(reports) if float(r["at"]) <= end), None)


def _stall_seconds(
    reports: list[dict[str, Any]], startup: dict[str, Any] | None, end: float
) -> float:
    """The player's stall seconds counted after startup, up to ``end``."""
    last = _last_before(reports, end)
    if startup is None or last is None:
        return 0.0
    return max(0.0, float(last["stall_s"]) - float(startup["stall_s"]))


def _stall_count(reports: list[dict[str, Any]], startup: dict[str, Any] | None, end: float) -> int:
    last = _last_before(reports, end)
    if startup is None or last is None:
        return 0
    return max(0, int(last["stalls"]) - int(startup["stalls"]))


def _chunk_qualities(
    played: list[dict[str, Any]], facts: ChannelFacts | None
) -> tuple[np.ndarray, np.ndarray]:
    if facts is None:
        nan = np.full(len(played), math.nan)
        return nan, nan.copy()
    pairs = [facts.quality(int(d["level"]), int(d["chunk"])) for d in played]
    return (
        np.array([q for q, _ in pairs], dtype=np.float64),
        np.array([s for _, s in pairs], dtype=np.float64),
    )
