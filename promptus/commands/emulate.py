"""`promptus emulate`: run ABR rules against network traces and write tables, plots and a report."""

from __future__ import annotations

import argparse
import shlex
import sys
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
    from emulation.report import headline_table
    from emulation.run import RunConfig, run_emulation
    from promptus.commands.demo import demo_ladder_dir

    abrs = tuple(a.strip() for a in args.abr.split(",") if a.strip())
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
    config = RunConfig(
        traces=args.traces, out=args.out, abrs=abrs, mode=args.mode, ladder=args.ladder,
        fallback_ladder=demo_ladder_dir(), seed=args.seed, session_s=args.session_s,
        daemon_fps=args.daemon_fps, rtt_ms=args.rtt_ms, max_buffer_s=args.max_buffer_s,
        puffer_unit=args.puffer_unit,
        sources=tuple(s.strip() for s in args.sources.split(",")) if args.sources else None,
        limit=args.limit, workers=args.workers, timeline_trace=args.timeline_trace,
        progress=not args.no_progress,
        command="promptus " + shlex.join(sys.argv[1:])
        if sys.argv[0].endswith("promptus")
        else shlex.join(sys.argv),
    )  # fmt: skip
    outcome = run_emulation(
        config, note=lambda text: print(f"promptus emulate: {text}", file=sys.stderr)
    )
    info = outcome.info
    print(headline_table(outcome.summaries))
    print(
        f"{info.sessions} sessions in {info.sim_wall_s:.1f} s ({info.sessions_per_minute:.0f} "
        f"sessions/min); report: {args.out / 'report.md'}"
    )
    return 0
