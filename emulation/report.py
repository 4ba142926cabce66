"""Run outputs: CSV/JSON tables, matplotlib plots and the markdown report of an emulation run.

``write_run`` writes all of them for a run of either mode (``emulation.run``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_write_bytes, atomic_write_json
from emulation.fast import SessionResult
from emulation.ladder import SimLadder
from emulation.metrics import (
    SchemeSummary,
    StreamMetrics,
    scheme_summary,
    stream_metrics,
    summaries_by_source,
)
from emulation.traces import Trace, TraceSummary, summarize

TIMELINE_STEP_S = 0.1  # s; sampling of the trace rate in the timeline plot
ABR_COLORS = {
    "bba": "tab:blue",
    "mpc": "tab:orange",
    "throughput": "tab:green",
    "bola": "tab:red",
    "fixed": "tab:gray",
}


@dataclass(frozen=True)
class RunInfo:
    """What the report says about how the run was made."""

    command: str
    mode: str
    ladder: str
    ladder_synthetic: bool
    quality_metric: str
    traces_dir: str
    puffer_unit: str
    seed: int
    workers: int
    sessions: int
    sim_wall_s: float
    config: dict[str, Any]

    @property
    def sessions_per_minute(self) -> float:
        return self.sessions / self.sim_wall_s * 60.0 if self.sim_wall_s > 0 else math.nan


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows (dicts with the same keys) as CSV, written atomically."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
    atomic_write_bytes(path, buffer.getvalue().encode())


def pick_timeline_trace(streams: Sequence[StreamMetrics]) -> str:
    """The trace on which the ABRs stalled most (ties: the first); the most telling timeline."""
    totals: dict[str, float] = {}
    for s in streams:
        totals[s.trace] = totals.get(s.trace, 0.0) + s.stall_s
    return max(totals, key=lambda name: (totals[name], -list(totals).index(name)))


def plot_stall_vs_quality(summaries: Sequence[SchemeSummary], metric: str, path: Path) -> None:
    """Puffer-style scatter: time stalled (%) against mean quality, with interval bars."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for s in summaries:
        if s.sessions == 0:
            continue
        x = s.stall_ratio.value * 100
        y = s.mean_quality_db.value
        ax.errorbar(
            x,
            y,
            xerr=[[x - s.stall_ratio.low * 100], [s.stall_ratio.high * 100 - x]],
            yerr=[[y - s.mean_quality_db.low], [s.mean_quality_db.high - y]],
            fmt="o",
            capsize=4,
            color=ABR_COLORS.get(s.abr),
            label=s.abr,
        )
        ax.annotate(s.abr, (x, y), textcoords="offset points", xytext=(6, 6))
    ax.invert_xaxis()  # Puffer's convention: better (less stalling) to the right
    ax.set_xlabel("time spent stalled (%)")
    ax.set_ylabel(f"mean quality ({'SSIM dB' if metric == 'ssim_db' else 'PSNR dB'})")
    ax.set_title("stall ratio vs quality per ABR (95% intervals)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_cdfs(streams: Sequence[StreamMetrics], abrs: Sequence[str], path: Path) -> None:
    """CDFs over sessions of quality, stall ratio, startup delay and bitrate, per ABR."""
    import matplotlib.pyplot as plt

    panels = (
        ("mean_quality_db", "mean quality (dB)"),
        ("stall_ratio", "stall ratio (%)"),
        ("startup_s", "startup delay (s)"),
        ("mean_bitrate_kbps", "mean bitrate (kbit/s)"),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (field, label) in zip(axes.flat, panels, strict=True):
        for abr in abrs:
            values = np.sort([getattr(s, field) for s in streams if s.abr == abr and s.valid])
            values = values[np.isfinite(values)]
            if field == "stall_ratio":
                values = values * 100
            if values.size:
                ax.step(
                    values,
                    np.arange(1, values.size + 1) / values.size,
                    where="post",
                    color=ABR_COLORS.get(abr),
                    label=abr,
                )
        ax.set_xlabel(label)
        ax.set_ylabel("share of sessions")
        ax.grid(alpha=0.3)
        if field == "mean_bitrate_kbps":
            ax.set_xscale("log")
    axes.flat[0].legend()
    fig.tight_layout()
    _save(fig, path)


def buffer_curve(result: SessionResult) -> tuple[list[float], list[float]]:
    """Buffer level over time from the chunk log: linear drains between events, flat at 0 in stalls."""
    log = result.chunks
    points = [(t, b) for t, b in zip(log["tReq"], log["bufAtReq"], strict=True)]
    points += [
        (t, b) for t, b in zip(log["tApp"], log["bufAfterApp"], strict=True) if b is not None
    ]
    points += [(s, 0.0) for s, _ in result.stalls] + [(e, 0.0) for _, e in result.stalls]
    points.append((result.end_s, 0.0))
    points.sort()
    return [p[0] for p in points], [p[1] for p in points]


def plot_timeline(
    results: Sequence[SessionResult], trace: Trace, ladder: SimLadder, path: Path
) -> None:
    """One trace's sessions: link rate and chunk delivery rate, buffer, and level over time."""
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_buf, ax_level) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    end = max(r.end_s for r in results)
    grid = np.arange(0.0, end, TIMELINE_STEP_S)
    offset = results[0].offset_s
    ax_rate.plot(
        grid, [trace.rate_at(t + offset) for t in grid], color="black", lw=0.8, label="trace rate"
    )
    for r in results:
        color = ABR_COLORS.get(r.abr)
        log = r.chunks
        rates = [
            (b + p) * 8 / d / 1e6
            for b, p, d in zip(log["bytes"], log["prefixBytes"], log["dlS"], strict=True)
        ]
        ax_rate.plot(log["tDl"], rates, ".", ms=3, color=color, label=f"{r.abr} chunk delivery")
        times, levels = buffer_curve(r)
        ax_buf.plot(times, levels, color=color, lw=1, label=r.abr)
        ax_level.step(log["tReq"], log["level"], where="post", color=color, lw=1, label=r.abr)
        for start, stop in r.stalls:
            ax_buf.axvspan(start, stop, color=color, alpha=0.15)
    ax_rate.set_ylabel("Mbit/s")
    ax_rate.set_yscale("symlog", linthresh=0.1)
    ax_rate.legend(fontsize=7, ncol=3)
    ax_buf.set_ylabel("buffer (s)")
    ax_buf.legend(fontsize=7, ncol=4)
    ax_level.set_ylabel("level")
    ax_level.set_yticks(range(ladder.levels), ladder.level_names)
    ax_level.set_xlabel("session time (s)")
    ax_rate.set_title(f"timeline on {trace.source}/{trace.name} (shaded: stalls)")
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def headline_table(summaries: Sequence[SchemeSummary]) -> str:
    """The per-ABR markdown table (stall ratio, quality, variation, startup, with intervals)."""
    lines = [
        "| ABR | sessions | stall ratio (%) [95% CI] | mean quality (dB) [+-2 SE] | "
        "quality variation (dB) | startup (s) | mean bitrate (kbit/s) | switches/min |",
        "|---|---:|---|---|---|---|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.abr} | {s.sessions} | {_fmt(s.stall_ratio.value * 100, 3)} "
            f"[{_fmt(s.stall_ratio.low * 100, 3)}, {_fmt(s.stall_ratio.high * 100, 3)}] | "
            f"{_fmt(s.mean_quality_db.value)} [{_fmt(s.mean_quality_db.low)}, {_fmt(s.mean_quality_db.high)}] | "
            f"{_fmt(s.quality_variation_db.value)} +- {_fmt(s.quality_variation_db.high - s.quality_variation_db.value)} | "
            f"{_fmt(s.startup_s.value)} +- {_fmt(s.startup_s.high - s.startup_s.value)} | "
            f"{_fmt(s.mean_bitrate_kbps, 1)} | {_fmt(s.switches_per_min)} |"
        )
    return "\n".join(lines)


def write_report(
    out: Path,
    info: RunInfo,
    summaries: Sequence[SchemeSummary],
    by_source: Sequence[dict[str, Any]],
    traces: Sequence[TraceSummary],
    timeline_trace: str,
    ladder: SimLadder,
) -> None:
    """RUN/report.md: what was run, the headline table, per-source breakdown, caveats."""
    sources: dict[str, int] = {}
    for t in traces:
        sources[t.source] = sources.get(t.source, 0) + 1
    ladder_rows = "\n".join(
        f"| {name} | {kbps:.1f} |"
        for name, kbps in zip(ladder.level_names, ladder.kbps, strict=True)
    )
    source_rows = "\n".join(
        f"| {r['source']} | {r['abr']} | {r['sessions']} | {_fmt(r['stall_ratio'] * 100, 3)} | "
        f"{_fmt(r['mean_quality_db'])} | {_fmt(r['quality_variation_db'])} | {_fmt(r['startup_s'])} |"
        for r in by_source
    )
    config = "\n".join(f"- `{k}`: {v}" for k, v in info.config.items())
    text = f"""# Emulation run ({info.mode} mode)

Command: `{info.command}`

- Ladder: **{info.ladder}**{" (synthetic: modelled sizes, assumed qualities, not a measured ladder)" if info.ladder_synthetic else ""}; quality metric `{info.quality_metric}`.
- Traces: {len(traces)} downlink traces from `{info.traces_dir}` ({", ".join(f"{k}: {v}" for k, v in sorted(sources.items()))}); Puffer traces read as `{info.puffer_unit}`{" (stored value x8)" if info.puffer_unit == "MBps" else ""}; mahimahi uplink files left out.
- Sessions: {info.sessions} (every trace x every ABR, same seeded start point per trace), seed {info.seed}.
- Wall time of the sessions: {info.sim_wall_s:.1f} s on {info.workers} worker process(es): **{info.sessions_per_minute:.0f} sessions per minute**.

## Headline (Puffer's definitions)

{headline_table(summaries)}

Stall ratio = total stall time / total watch time (bootstrap over sessions); mean quality =
watch-time-weighted mean of per-session means; variation = mean |dB change| between consecutive
chunks, averaged over sessions; startup = time from session start to first frame. Sessions that never
started or watched < 4 s are excluded; a stall over 20 s truncates the session (Puffer's rules).

![stall ratio vs quality](stall_vs_quality.png)

![CDFs](cdf.png)

Timeline of the trace with the most stalling (`{timeline_trace}`):

![timeline](timeline.png)

## Per trace source

| source | ABR | sessions | stall ratio (%) | mean quality (dB) | variation (dB) | startup (s) |
|---|---|---:|---:|---:|---:|---:|
{source_rows}

## Ladder

| level | mean kbit/s |
|---|---:|
{ladder_rows}

## Model parameters

{config}

Files: `summary.csv`/`summary.json` (per ABR, with intervals), `summary_by_source.csv`,
`sessions.csv` (per session), `traces.csv` (trace statistics), `timeline.json`, `run.json`.
"""
    atomic_write_bytes(out / "report.md", text.encode())


def write_tables(
    out: Path,
    info: RunInfo,
    summaries: Sequence[SchemeSummary],
    streams: Sequence[StreamMetrics],
    by_source: Sequence[dict[str, Any]],
    traces: Sequence[TraceSummary],
    timeline: Sequence[SessionResult],
) -> None:
    """Every machine-readable output of a run."""
    write_csv(out / "summary.csv", [s.to_row() for s in summaries])
    atomic_write_json(out / "summary.json", [s.to_row() for s in summaries])
    write_csv(out / "summary_by_source.csv", list(by_source))
    write_csv(out / "sessions.csv", [s.to_row() for s in streams])
    write_csv(out / "traces.csv", [asdict(t) for t in traces])
    atomic_write_json(out / "timeline.json", [r.to_json() for r in timeline])
    atomic_write_json(
        out / "run.json", {**asdict(info), "sessions_per_minute": info.sessions_per_minute}
    )


def write_run(
    out: Path,
    info: RunInfo,
    results: Sequence[SessionResult],
    traces: Sequence[Trace],
    ladder: SimLadder,
    abrs: Sequence[str],
    timeline_trace: str | None = None,
) -> list[SchemeSummary]:
    """Every output of a run, fast or full mode: Puffer's metrics of ``results``, the tables, the
    plots (the timeline of ``timeline_trace``, default the trace where the rules stalled most)
    and ``report.md``; returns the per-ABR summaries."""
    ssim = ladder.quality_metric == "ssim_db"
    streams = [stream_metrics(r, ladder) for r in results]
    summaries = [scheme_summary(abr, streams, ssim=ssim, seed=info.seed) for abr in abrs]
    by_source = summaries_by_source(streams, list(abrs), ssim=ssim, seed=info.seed)
    trace_stats = [summarize(t) for t in traces]
    timeline_name = timeline_trace or pick_timeline_trace(streams)
    timeline = [r for r in results if r.trace == timeline_name]
    write_tables(out, info, summaries, streams, by_source, trace_stats, timeline)
    plot_stall_vs_quality(summaries, ladder.quality_metric, out / "stall_vs_quality.png")
    plot_cdfs(streams, abrs, out / "cdf.png")
    trace = next(t for t in traces if t.name == timeline_name)
    plot_timeline(timeline, trace, ladder, out / "timeline.png")
    write_report(out, info, summaries, by_source, trace_stats, timeline_name, ladder)
    return summaries
