"""`promptus emulate`: run ABR rules against network traces and write tables, plots and a report."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from promptus.errors import CommandError

DEFAULT_ABRS = "bba,mpc,throughput,bola"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--traces",
        required=True,
        type=Path,
        help="trace file, source folder, or folder of source folders (e.g. ../shared/traces)",
    )
    parser.add_argument(
        "--abr",
        default=DEFAULT_ABRS,
        help="comma-separated rules (bba, mpc, throughput, bola, fixed)",
    )
    parser.add_argument(
        "--mode",
        choices=("fast", "full"),
        default="fast",
        help="fast: chunk-level simulation under Node; full: real server, daemon and browser",
    )
    parser.add_argument(
        "--ladder",
        type=Path,
        default=None,
        help="ladder directory or manifest.json (default: the ladder `promptus demo` built, "
        "demo-data/<generator>/media/demo, else the built-in synthetic ladder)",
    )
    parser.add_argument("--out", required=True, type=Path, help="run directory to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of start points and noise")
    parser.add_argument("--session-s", type=float, default=300.0, help="media seconds per session")
    parser.add_argument(
        "--daemon-fps",
        type=float,
        default=500.0,
        help="daemon generation speed, frames/s",
    )
    parser.add_argument("--rtt-ms", type=float, default=80.0, help="round trip per request, ms")
    parser.add_argument(
        "--max-buffer-s",
        type=float,
        default=None,
        help="player buffer cap, s (default: the player's own, 15)",
    )
    parser.add_argument(
        "--puffer-unit",
        choices=("MBps", "Mbps"),
        default="MBps",
        help="unit of the stored Puffer values (MBps: x8; see the traces README)",
    )
    parser.add_argument(
        "--sources", default=None, help="only these source folders (comma-separated) (default: all)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="at most this many traces per source (default: all)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="Node worker processes (default: the CPU count)"
    )
    parser.add_argument(
        "--timeline-trace",
        default=None,
        help="trace name for the timeline plot (default: the trace where the rules differ most)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from emulation import report
    from emulation.catalog import build_catalog
    from emulation.fast import SimConfig, run_fast
    from emulation.ladder import default_ladder, load_ladder
    from emulation.metrics import scheme_summary, stream_metrics, summaries_by_source
    from emulation.traces import PairUnit, summarize
    from promptus.commands.demo import demo_ladder_dir

    abrs = [a.strip() for a in args.abr.split(",") if a.strip()]
    if not abrs:
        raise CommandError("--abr names no rule")
    for name, value in (
        ("--session-s", args.session_s),
        ("--daemon-fps", args.daemon_fps),
        ("--max-buffer-s", 1.0 if args.max_buffer_s is None else args.max_buffer_s),
    ):
        if not value > 0:
            raise CommandError(f"{name} must be positive, got {value}")
    if args.rtt_ms < 0:
        raise CommandError(f"--rtt-ms must be >= 0, got {args.rtt_ms}")
    if args.ladder:
        ladder = load_ladder(args.ladder)
    else:
        ladder, note = default_ladder(demo_ladder_dir(), args.seed)
        print(f"promptus emulate: {note}", file=sys.stderr)
        if not ladder.synthetic:
            args.ladder = demo_ladder_dir()  # full mode plays the same ladder
    catalog = build_catalog(args.traces, puffer_unit=PairUnit(args.puffer_unit))
    if args.sources:
        wanted = {s.strip() for s in args.sources.split(",")}
        catalog = [e for e in catalog if e.source in wanted]
        if not catalog:
            raise CommandError(f"no traces from sources {sorted(wanted)}")
    if args.limit is not None:
        counts: dict[str, int] = {}
        kept = []
        for entry in catalog:
            counts[entry.source] = counts.get(entry.source, 0) + 1
            if counts[entry.source] <= args.limit:
                kept.append(entry)
        catalog = kept
    traces = [entry.load() for entry in catalog]

    if args.mode == "full":
        from emulation.full import run_full

        return run_full(args, ladder, traces, abrs)

    config = SimConfig(
        session_s=args.session_s,
        max_buffer_s=args.max_buffer_s,
        rtt_s=args.rtt_ms / 1000.0,
        daemon_fps=args.daemon_fps,
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    total = len(traces) * len(abrs)
    bar = tqdm(
        total=total,
        unit="session",
        desc="emulate (fast)",
        disable=args.no_progress,
        file=sys.stderr,
    )
    started = time.perf_counter()
    try:
        results = run_fast(
            ladder,
            traces,
            abrs,
            config,
            seed=args.seed,
            workers=args.workers,
            on_result=lambda _: bar.update(1),
        )
    finally:
        bar.close()
    wall = time.perf_counter() - started

    ssim = ladder.quality_metric == "ssim_db"
    streams = [stream_metrics(r, ladder) for r in results]
    summaries = [scheme_summary(abr, streams, ssim=ssim, seed=args.seed) for abr in abrs]
    by_source = summaries_by_source(streams, abrs, ssim=ssim, seed=args.seed)
    trace_stats = [summarize(t) for t in traces]
    timeline_name = args.timeline_trace or report.pick_timeline_trace(streams)
    timeline = [r for r in results if r.trace == timeline_name]
    if not timeline:
        raise CommandError(f"--timeline-trace {timeline_name!r} is not among the run's traces")
    info = report.RunInfo(
        command="promptus " + shlex.join(sys.argv[1:])
        if sys.argv[0].endswith("promptus")
        else shlex.join(sys.argv),
        mode="fast",
        ladder=ladder.name,
        ladder_synthetic=ladder.synthetic,
        quality_metric=ladder.quality_metric,
        traces_dir=str(args.traces),
        puffer_unit=args.puffer_unit,
        seed=args.seed,
        workers=args.workers or _cpu_count(),
        sessions=len(results),
        sim_wall_s=wall,
        config={**config.to_json(), "sessionS": config.session_s},
    )
    report.write_tables(out, info, summaries, streams, by_source, trace_stats, timeline)
    report.plot_stall_vs_quality(summaries, ladder.quality_metric, out / "stall_vs_quality.png")
    report.plot_cdfs(streams, abrs, out / "cdf.png")
    timeline_trace = traces[[t.name for t in traces].index(timeline_name)]
    report.plot_timeline(timeline, timeline_trace, ladder, out / "timeline.png")
    report.write_report(out, info, summaries, by_source, trace_stats, timeline_name, ladder)
    print(report.headline_table(summaries))
    print(
        f"{len(results)} sessions in {wall:.1f} s ({info.sessions_per_minute:.0f} sessions/min); "
        f"report: {out / 'report.md'}"
    )
    return 0


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1
