"""One emulation run from a typed request (``promptus emulate``): the ladder, the traces, every
trace x ABR session in fast mode (``emulation.fast``) or full mode (``emulation.full``), then the
run's tables, plots and report, written the same way for both modes (``report.write_run``)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from emulation import report
from emulation.fast import SessionResult, SimConfig, run_fast
from emulation.ladder import SimLadder, default_ladder, load_ladder, synthetic_ladder
from emulation.metrics import SchemeSummary
from emulation.traces import PairUnit, Trace


class RunError(UserError, ValueError):
    """The run cannot be made with these inputs (one-line reason)."""


@dataclass(frozen=True)
class RunConfig:
    """What one run plays, where, and with which model parameters."""

    traces: Path  # a trace file, a source folder, or a folder of source folders
    out: Path  # the run directory to write
    abrs: tuple[str, ...]  # the rules, by their web/abr/ names
    mode: str = "fast"  # "fast" (chunk-level simulation under Node) or "full" (the real stack)
    ladder: Path | None = None  # a ladder directory or manifest.json; None: ``fallback_ladder``
    fallback_ladder: Path | None = None  # used when it holds a ladder, else the synthetic one
    seed: int = 0  # seed of start points and noise
    session_s: float = 300.0  # media seconds per session
    daemon_fps: float = 500.0  # fast mode: daemon generation speed, frames/s
    rtt_ms: float = 80.0  # round trip per request, ms (full mode: half of it each way)
    max_buffer_s: float | None = None  # fast mode: the player's buffer cap, s; None: its own
    puffer_unit: str = PairUnit.MBYTES_PER_S.value  # unit of the stored Puffer values
    sources: tuple[str, ...] | None = None  # only these source folders; None: all
    limit: int | None = None  # at most this many traces per source; None: all
    workers: int | None = None  # fast mode: Node worker processes; None: the CPU count
    timeline_trace: str | None = None  # None: the trace where the rules stalled most
    progress: bool = True
    command: str = ""  # the command line, as the report quotes it


@dataclass(frozen=True)
class RunOutcome:
    """What a run found (its files are in ``RunConfig.out``)."""

    info: report.RunInfo
    summaries: list[SchemeSummary]


def open_ladder(config: RunConfig) -> tuple[SimLadder, Path | None, str | None]:
    """The run's ladder, its directory (None for the synthetic ladder) and a note saying which
    default was taken (None when ``config.ladder`` names it)."""
    if config.ladder is not None:
        return load_ladder(config.ladder), config.ladder, None
    if config.fallback_ladder is None:
        return synthetic_ladder(config.seed), None, None
    ladder, note = default_ladder(config.fallback_ladder, config.seed)
    return ladder, None if ladder.synthetic else config.fallback_ladder, note


def load_traces(config: RunConfig) -> list[Trace]:
    """The traces ``config`` selects (sources, at most ``limit`` per source), read."""
    from emulation.catalog import build_catalog

    catalog = build_catalog(config.traces, puffer_unit=PairUnit(config.puffer_unit))
    if config.sources is not None:
        wanted = set(config.sources)
        catalog = [e for e in catalog if e.source in wanted]
        if not catalog:
            raise RunError(f"no traces from sources {sorted(wanted)}")
    if config.limit is not None:
        counts: dict[str, int] = {}
        kept = []
        for entry in catalog:
            counts[entry.source] = counts.get(entry.source, 0) + 1
            if counts[entry.source] <= config.limit:
                kept.append(entry)
        catalog = kept
    return [entry.load() for entry in catalog]


def run_emulation(
    config: RunConfig, *, note: Callable[[str], None] = lambda text: None
) -> RunOutcome:
    """Play every trace x ABR session of ``config`` and write the run; ``note`` hears which
    default ladder was taken before the sessions start."""
    ladder, ladder_dir, which = open_ladder(config)
    if which is not None:
        note(which)
    traces = load_traces(config)
    if config.timeline_trace is not None and config.timeline_trace not in {t.name for t in traces}:
        raise RunError(f"--timeline-trace {config.timeline_trace!r} is not among the run's traces")
    started = time.perf_counter()
    if config.mode == "full":
        from emulation.full import FullConfig, run_full

        full = FullConfig(session_s=config.session_s, delay_ms=config.rtt_ms / 2)
        results = run_full(
            ladder_dir, ladder, traces, config.abrs, full, seed=config.seed, out=config.out,
            progress=config.progress,
        )  # fmt: skip
        workers, parameters = 1, full.to_json()
    else:
        sim = SimConfig(
            session_s=config.session_s, max_buffer_s=config.max_buffer_s,
            rtt_s=config.rtt_ms / 1000.0, daemon_fps=config.daemon_fps,
        )  # fmt: skip
        workers = config.workers or os.cpu_count() or 1
        results = _run_fast(config, ladder, traces, sim)
        parameters = {**sim.to_json(), "sessionS": sim.session_s}
    info = report.RunInfo(
        command=config.command, mode=config.mode, ladder=ladder.name,
        ladder_synthetic=ladder.synthetic, quality_metric=ladder.quality_metric,
        traces_dir=str(config.traces), puffer_unit=config.puffer_unit, seed=config.seed,
        workers=workers, sessions=len(results), sim_wall_s=time.perf_counter() - started,
        config=parameters,
    )  # fmt: skip
    summaries = report.write_run(
        config.out, info, results, traces, ladder, config.abrs, config.timeline_trace
    )
    return RunOutcome(info, summaries)


def _run_fast(
    config: RunConfig, ladder: SimLadder, traces: Sequence[Trace], sim: SimConfig
) -> list[SessionResult]:
    from tqdm import tqdm

    config.out.mkdir(parents=True, exist_ok=True)
    with tqdm(
        total=len(traces) * len(config.abrs), unit="session", desc="emulate (fast)",
        disable=not config.progress, file=sys.stderr,
    ) as bar:  # fmt: skip
        return run_fast(
            ladder, traces, config.abrs, sim, seed=config.seed, workers=config.workers,
            on_result=lambda _: bar.update(1),
        )  # fmt: skip
