"""Fast-mode throughput: sessions per minute over the development traces, per worker count.

    python scripts/emulation_bench.py [--traces ../shared/traces] [--workers 1,2] [--session-s 300]

Runs every downlink trace x the four ABRs (bba, mpc, throughput, bola) through the Node simulator
and prints one row per worker count. Target: >= 1000 sessions per minute on two cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from emulation.catalog import build_catalog
from emulation.fast import SimConfig, run_fast
from emulation.ladder import synthetic_ladder

ABRS = ("bba", "mpc", "throughput", "bola")
TARGET_PER_MIN = 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--traces", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "traces"
    )
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--session-s", type=float, default=300.0)
    args = parser.parse_args()

    traces = [entry.load() for entry in build_catalog(args.traces)]
    ladder = synthetic_ladder()
    config = SimConfig(session_s=args.session_s)
    print(
        f"{len(traces)} traces x {len(ABRS)} ABRs, {args.session_s:.0f} s sessions, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'workers':>7} {'sessions':>9} {'wall s':>8} {'sessions/min':>13} {'target':>8}")
    for workers in (int(w) for w in args.workers.split(",")):
        started = time.perf_counter()
        results = run_fast(ladder, traces, ABRS, config, workers=workers)
        wall = time.perf_counter() - started
        rate = len(results) / wall * 60
        verdict = "ok" if rate >= TARGET_PER_MIN else "MISSED"
        print(f"{workers:>7} {len(results):>9} {wall:>8.1f} {rate:>13.0f} {verdict:>8}")


if __name__ == "__main__":
    main()
