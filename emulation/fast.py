"""Fast mode driver: runs trace x ABR sessions in a few Node processes (`emulation/sim/`).

Each worker process gets one job file (ladder, the traces its sessions use, config, sessions)
and prints one JSON line per finished session, which feeds the progress bar. The ABR rules are
the player's own `web/abr/` modules. Sessions of the same trace share a seed across ABRs
(common random numbers: same start offset and noise draws), so ABRs meet the same network.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from client_daemon.muxer import NEAR_LOSSLESS
from common.errors import UserError
from emulation.ladder import SimLadder
from emulation.traces import Trace

SIM_DIR = Path(__file__).resolve().parent / "sim"
RUNNER = SIM_DIR / "run.mjs"
ABR_INDEX = SIM_DIR.parent.parent / "web" / "abr" / "index.js"
NODE_QUERY_TIMEOUT_S = 30.0


class SimulatorError(UserError, RuntimeError):
    """The Node simulator could not run, or a session failed inside it."""


@dataclass(frozen=True)
class SimConfig:
    """Model parameters of a fast-mode session (see ``sim/session.mjs`` for the model)."""

    session_s: float = 300.0  # s of media per session (the ladder and the trace loop)
    max_buffer_s: float | None = None  # s; None: the player's own cap (15 s, Puffer's)
    rtt_s: float = 0.08  # s; per request
    payload_share: float = 0.95  # share of link rate that carries payload
    delay_noise: float = 0.1  # relative spread of transfer times
    daemon_fps: float = 500.0  # frames/s the daemon generates
    daemon_jitter: float = 0.1  # relative spread of generation times
    daemon_open_s: float = 0.3  # s until the daemon's init segment is ready
    gop_frames: int = NEAR_LOSSLESS.gop_frames  # frames per media segment the daemon sends
    random_start: bool = True  # start each session at a seeded random point of its trace

    def to_json(self) -> dict[str, Any]:
        overrides = {} if self.max_buffer_s is None else {"maxBufferS": self.max_buffer_s}
        return {
            **overrides,
            "rttS": self.rtt_s,
            "payloadShare": self.payload_share,
            "delayNoise": self.delay_noise,
            "daemonFps": self.daemon_fps,
            "daemonJitter": self.daemon_jitter,
            "daemonOpenS": self.daemon_open_s,
            "gopFrames": self.gop_frames,
            "randomStart": self.random_start,
        }


@dataclass(frozen=True)
class SessionResult:
    """One simulated session: identity, timing and the per-chunk log."""

    trace: str
    source: str
    abr: str
    seed: int
    offset_s: float
    startup_s: float | None
    end_s: float
    abandoned: bool
    stalls: list[tuple[float, float]]
    chunks: dict[str, list[float]] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def session_chunks(ladder: SimLadder, session_s: float) -> int:
    """Chunks needed to cover ``session_s`` of media with the ladder looping."""
    per_loop = float(ladder.chunk_s.sum())
    loops, rest = divmod(session_s, per_loop)
    cumulative = ladder.chunk_s.cumsum()
    extra = int((cumulative < rest - 1e-9).sum()) + (1 if rest > 1e-9 else 0)
    return max(1, int(loops) * ladder.chunks + extra)


def trace_seed(seed: int, trace: Trace) -> int:
    """A 32-bit seed per (run seed, trace), identical for every ABR."""
    digest = hashlib.sha256(f"{seed}:{trace.source}/{trace.name}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def node_executable() -> str:
    """Path of ``node``; raises ``SimulatorError`` with the fix when missing."""
    node = shutil.which("node")
    if node is None:
        raise SimulatorError("node (Node.js >= 18) is not installed; `apt-get install -y nodejs`")
    return node


@functools.cache
def abr_names() -> tuple[str, ...]:
    """The rule names the player's registry (``web/abr/index.js``) knows."""
    script = f"import({json.dumps(ABR_INDEX.as_uri())}).then((m) => console.log(JSON.stringify(m.ABR_NAMES)))"
    try:
        done = subprocess.run(
            [node_executable(), "--input-type=module", "-e", script],
            capture_output=True,
            text=True,
            timeout=NODE_QUERY_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SimulatorError("node did not list the ABR rules in time") from None
    if done.returncode != 0:
        raise SimulatorError(f"cannot load {ABR_INDEX}: {done.stderr.strip()[-500:]}")
    return tuple(json.loads(done.stdout))


def _trace_json(trace: Trace) -> dict[str, Any]:
    return {
        "name": trace.name,
        "starts": trace.starts_s.tolist(),
        "mbps": trace.mbps.tolist(),
        "durationS": trace.duration_s,
    }


def run_fast(
    ladder: SimLadder,
    traces: Sequence[Trace],
    abrs: Sequence[str],
    config: SimConfig = SimConfig(),
    *,
    seed: int = 0,
    workers: int | None = None,
    abr_options: dict[str, dict[str, Any]] | None = None,
    on_result: Callable[[SessionResult], object] | None = None,
) -> list[SessionResult]:
    """Simulate every trace x ABR session; results in (trace, abr) order."""
    known = abr_names()
    unknown = [a for a in abrs if a not in known]
    if unknown:
        raise SimulatorError(f"unknown ABR {unknown[0]!r}; choose from {', '.join(known)}")
    for trace in traces:
        if trace.mean_mbps <= 0:
            raise SimulatorError(f"trace {trace.name} delivers nothing (mean rate 0)")
    chunks = session_chunks(ladder, config.session_s)
    specs = [(t, abr) for t in range(len(traces)) for abr in abrs]
    workers = max(1, min(workers or os.cpu_count() or 1, len(specs)))
    node = node_executable()
    results: dict[int, SessionResult] = {}
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="promptus-sim-") as tmp:
        procs = []
        for w in range(workers):
            mine = list(range(w, len(specs), workers))
            used = sorted({specs[i][0] for i in mine})
            local = {t: n for n, t in enumerate(used)}
            job = {
                "ladder": ladder.to_json(),
                "traces": [_trace_json(traces[t]) for t in used],
                "config": config.to_json(),
                "abrOptions": abr_options or {},
                "sessions": [
                    {
                        "id": i,
                        "trace": local[specs[i][0]],
                        "abr": specs[i][1],
                        "seed": trace_seed(seed, traces[specs[i][0]]),
                        "chunks": chunks,
                    }
                    for i in mine
                ],
            }
            path = Path(tmp) / f"job{w}.json"
            path.write_text(json.dumps(job))
            errors = (Path(tmp) / f"job{w}.err").open("w")
            proc = subprocess.Popen(
                [node, str(RUNNER), str(path)], stdout=subprocess.PIPE, stderr=errors, text=True
            )
            errors.close()
            procs.append((proc, Path(tmp) / f"job{w}.err"))
            threading.Thread(target=_pump, args=(w, proc, lines), daemon=True).start()
        # Bounded: every worker ends its stream with None (EOF), even when node crashes.
        failure: str | None = None
        open_pipes = workers
        try:
            while open_pipes:
                _, line = lines.get()
                if line is None:
                    open_pipes -= 1
                    continue
                record = json.loads(line)
                if "error" in record:
                    failure = failure or f"session {record['id']}: {record['error']}"
                    continue
                trace_index, abr = specs[record["id"]]
                trace = traces[trace_index]
                result = SessionResult(
                    trace=trace.name,
                    source=trace.source,
                    abr=abr,
                    seed=trace_seed(seed, trace),
                    offset_s=record["offsetS"],
                    startup_s=record["startupS"],
                    end_s=record["endS"],
                    abandoned=record["abandoned"],
                    stalls=[tuple(s) for s in record["stalls"]],
                    chunks=record["chunks"],
                )
                results[record["id"]] = result
                if on_result is not None:
                    on_result(result)
            for proc, err_path in procs:
                stderr = err_path.read_text()
                if proc.wait() != 0:
                    failure = (
                        failure or f"node exited with {proc.returncode}: {stderr.strip()[-2000:]}"
                    )
        finally:
            for proc, _ in procs:  # only our own workers, e.g. after Ctrl-C
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    if failure:
        raise SimulatorError(failure)
    if len(results) != len(specs):
        raise SimulatorError(f"simulator returned {len(results)} of {len(specs)} sessions")
    return [results[i] for i in range(len(specs))]


def _pump(
    worker: int, proc: subprocess.Popen[str], lines: queue.Queue[tuple[int, str | None]]
) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            lines.put((worker, line))
    lines.put((worker, None))
