"""Full mode: the real media server, the real daemon and the real page in headless Chromium, with the
viewer's downlink shaped by the kernel following a trace.

Per session (one trace x one ABR), in two namespaces the run creates (``emulation.netns``):

- server namespace: ``promptus serve`` on 127.0.0.1:8080 over a media folder holding the ladder,
  and ``emulation.delay_relay`` on 0.0.0.0:8000 adding the one-way base delay each way;
- viewer namespace: ``promptus daemon`` on 127.0.0.1:9090 and ``emulation.browser_session``
  (Playwright + /usr/bin/chromium) opening ``http://<server ip>:8000/?channel=..&abr=..``;
- the server side of the veth is shaped by ``tbf`` at the trace's rate (``TracePlayer``).

Everything is torn down when the session ends or fails (the namespaces' processes are killed and
the namespaces deleted). Metrics come from the page's own player snapshots.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.processes import Child, first_exited
from emulation.fast import SessionResult, trace_seed
from emulation.ladder import SimLadder
from emulation.netns import LinkSpec, NetnsError, ShapedPair, TracePlayer, check_available
from emulation.traces import Trace

CHROMIUM = Path("/usr/bin/chromium")
SERVER_PORT = 8080
RELAY_PORT = 8000
DAEMON_PORT = 9090
CHANNEL = "emulated"
READY_TIMEOUT_S = 90.0  # s; server, relay and daemon must listen within this
BROWSER_MARGIN_S = 90.0  # s; browser start-up and page load on top of the session length
POLL_S = 0.2


class FullModeUnavailable(UserError, RuntimeError):
    """Full mode cannot run here (message says what is missing)."""


@dataclass(frozen=True)
class FullConfig:
    session_s: float = 60.0  # s the page plays
    delay_ms: float = 40.0  # one-way base delay (Puffer's emulation: mm-delay 40)
    queue_packets: int = 200
    uplink_mbps: float = 12.0
    generator: str = "tiny"  # the daemon's generator; must match the ladder's generator id

    def to_json(self) -> dict[str, object]:
        """The model parameters as the run's report names them."""
        return {
            "sessionS": self.session_s,
            "delayMsEachWay": self.delay_ms,
            "queuePackets": self.queue_packets,
            "uplinkMbps": self.uplink_mbps,
            "generator": self.generator,
        }


def check_full_mode(ladder_dir: Path | None) -> None:
    """Raises ``FullModeUnavailable`` unless everything full mode needs is here."""
    if ladder_dir is None:
        raise FullModeUnavailable(
            "full mode needs a real ladder (--ladder DIR) whose generator the daemon loads"
        )
    if not CHROMIUM.exists():
        raise FullModeUnavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise FullModeUnavailable(
            "the playwright Python package is missing (pip install playwright)"
        ) from None
    try:
        check_available()
    except NetnsError as error:
        raise FullModeUnavailable(str(error)) from None


def _wait_listening(
    pair: ShapedPair, ns: str, host: str, port: int, children: Sequence[Child], logs: Path
) -> None:
    """Polls until ``host:port`` accepts inside ``ns`` (bounded by READY_TIMEOUT_S)."""
    probe = (
        f"import socket,sys\ns=socket.socket()\ns.settimeout(1)\n"
        f"sys.exit(s.connect_ex(({host!r},{port})))"
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        exited = first_exited(children)
        if exited is not None:
            tail = logs.read_text(errors="replace").strip().splitlines()[-3:]
            raise FullModeUnavailable(
                f"{exited.name} exited early ({' | '.join(tail)}); logs in {logs}"
            )
        done = subprocess.run(
            [*pair.exec_prefix(ns), sys.executable, "-c", probe],
            capture_output=True,
            timeout=10,
            check=False,
        )
        if done.returncode == 0:
            return
        time.sleep(POLL_S)
    raise FullModeUnavailable(
        f"{host}:{port} did not listen within {READY_TIMEOUT_S:.0f} s; logs in {logs}"
    )


def full_session(
    ladder_dir: Path,
    ladder: SimLadder,
    trace: Trace,
    abr: str,
    config: FullConfig,
    *,
    seed: int,
    workdir: Path,
    fixed_level: int | None = None,
) -> tuple[SessionResult, dict[str, object]]:
    """Runs one shaped browser session; returns its result and the raw page samples.

    ``fixed_level`` is the level of the ``fixed`` rule (the page's ``fixed=`` URL parameter).
    """
    media = workdir / "media"
    media.mkdir(parents=True, exist_ok=True)
    channel = media / CHANNEL
    if not channel.exists():  # a copy: the server reads no file that resolves outside its media
        shutil.copytree(Path(ladder_dir), channel)
    offset = (trace_seed(seed, trace) / 2**32) * trace.duration_s
    logs = workdir / f"{_safe(trace.name)}.{abr}.log"
    children: list[Child] = []
    python = sys.executable
    spec = LinkSpec(queue_packets=config.queue_packets, uplink_mbps=config.uplink_mbps)
    with logs.open("wb") as log, ShapedPair(spec, initial_mbps=trace.rate_at(offset)) as pair:
        try:
            origin = f"http://{pair.server_ip}:{RELAY_PORT}"
            commands = (
                (
                    "serve",
                    pair.server_ns,
                    [
                        python,
                        "-m",
                        "promptus",
                        "serve",
                        "--media",
                        str(media),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(SERVER_PORT),
                        "--telemetry",
                        "off",
                    ],
                ),
                (
                    "relay",
                    pair.server_ns,
                    [
                        python,
                        "-m",
                        "emulation.delay_relay",
                        "--listen",
                        f"0.0.0.0:{RELAY_PORT}",
                        "--target",
                        f"127.0.0.1:{SERVER_PORT}",
                        "--delay-ms",
                        str(config.delay_ms),
                    ],
                ),
                (
                    "daemon",
                    pair.viewer_ns,
                    [
                        python,
                        "-m",
                        "promptus",
                        "daemon",
                        "--generator",
                        config.generator,
                        "--port",
                        str(DAEMON_PORT),
                        "--allow-origin",
                        origin,
                    ],
                ),
            )
            for name, ns, command in commands:
                children.append(Child(name, [*pair.exec_prefix(ns), *command], output=log))
            _wait_listening(pair, pair.server_ns, "127.0.0.1", SERVER_PORT, children, logs)
            _wait_listening(pair, pair.viewer_ns, pair.server_ip, RELAY_PORT, children, logs)
            _wait_listening(pair, pair.viewer_ns, "127.0.0.1", DAEMON_PORT, children, logs)
            player = TracePlayer(pair, trace, config.session_s + BROWSER_MARGIN_S, offset).start()
            try:
                url = f"{origin}/?channel={CHANNEL}&abr={abr}&daemon=ws://127.0.0.1:{DAEMON_PORT}"
                if fixed_level is not None:
                    url += f"&fixed={fixed_level}"
                browser = subprocess.run(
                    [
                        *pair.exec_prefix(pair.viewer_ns),
                        python,
                        "-m",
                        "emulation.browser_session",
                        "--url",
                        url,
                        "--seconds",
                        str(config.session_s),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=config.session_s + BROWSER_MARGIN_S,
                    check=False,
                )
            finally:
                player.stop()
            if browser.returncode != 0:
                raise FullModeUnavailable(
                    f"browser session failed: {browser.stderr.strip()[-500:]}"
                )
            page = json.loads(browser.stdout)
        finally:
            pair.close()  # kills server, relay and daemon before they are reaped
            for child in children:
                child.wait()
    if page.get("error"):
        raise FullModeUnavailable(f"page error: {page['error']}; logs in {logs}")
    return result_from_samples(page["samples"], ladder, trace, abr, seed, offset), page


def result_from_samples(
    samples: Sequence[dict[str, Any]],  # the page's JSON snapshots
    ladder: SimLadder,
    trace: Trace,
    abr: str,
    seed: int,
    offset_s: float,
) -> SessionResult:
    """A ``SessionResult`` from the page's snapshots (chunk levels as first seen playing)."""
    seen: dict[int, tuple[float, int, float, float | None]] = {}
    stalls: list[tuple[float, float]] = []
    previous_stall = 0.0
    previous_t = 0.0
    for s in samples:
        t = float(s["t"])
        stall = float(s.get("stallS") or 0.0)
        if stall > previous_stall + 1e-3:  # stalled (at least partly) since the last sample
            if stalls and abs(stalls[-1][1] - previous_t) < 1e-9:
                stalls[-1] = (stalls[-1][0], t)
            else:
                stalls.append((max(previous_t, t - (stall - previous_stall)), t))
        previous_stall, previous_t = stall, t
        chunk, level = s.get("chunk"), s.get("levelId")
        if s.get("startupS") is None:
            continue  # nothing plays yet: the page reports chunk 0 at level 0 as placeholders
        if isinstance(chunk, int) and isinstance(level, int) and chunk >= 0 and chunk not in seen:
            throughput = s.get("throughputKbps")
            seen[chunk] = (
                t,
                level,
                float(s.get("bufferS") or 0.0),
                float(throughput) / 1000 if isinstance(throughput, int | float) else None,
            )
    order = sorted(seen)
    levels = [seen[c][1] for c in order]
    ids = [c % ladder.chunks for c in order]
    startup = samples[-1].get("startupS") if samples else None
    n = len(order)
    chunks: dict[str, list[float]] = {
        "level": [*levels],
        "chunk": [*ids],
        "bytes": [int(ladder.sizes_bytes[lv, j]) for lv, j in zip(levels, ids, strict=True)],
        "prefixBytes": [0] * n,
        "quality": [float(ladder.quality_db[lv, j]) for lv, j in zip(levels, ids, strict=True)],
        "tReq": [seen[c][0] for c in order],
        "tDl": [seen[c][0] for c in order],
        "tApp": [seen[c][0] for c in order],
        "bufAtReq": [seen[c][2] for c in order],
        "bufAfterApp": [seen[c][2] for c in order],
        "dlS": [float("nan")] * n,
        "deliveryMbps": [float("nan") if (mbps := seen[c][3]) is None else mbps for c in order],
    }
    end = float(samples[-1]["t"]) if samples else 0.0
    return SessionResult(
        trace=trace.name,
        source=trace.source,
        abr=abr,
        seed=trace_seed(seed, trace),
        offset_s=offset_s,
        startup_s=float(startup) if isinstance(startup, int | float) else None,
        end_s=end,
        abandoned=False,
        stalls=stalls,
        chunks=chunks,
    )


def run_full(
    ladder_dir: Path | None,
    ladder: SimLadder,
    traces: Sequence[Trace],
    abrs: Sequence[str],
    config: FullConfig,
    *,
    seed: int,
    out: Path,
    progress: bool = True,
) -> list[SessionResult]:
    """Every trace x ABR as a real shaped browser session, in (trace, abr) order.

    ``out`` keeps the media copy and one log per session (``stack/``, for post-mortems) and
    each session's raw page samples (``pages/``); ``FullModeUnavailable`` when full mode cannot
    run here.
    """
    from tqdm import tqdm

    check_full_mode(ladder_dir)
    assert ladder_dir is not None
    out.mkdir(parents=True, exist_ok=True)
    results: list[SessionResult] = []
    # SIGTERM unwinds like Ctrl-C, so the namespaces' teardown runs.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    workdir = out / "stack"
    bar = tqdm(
        total=len(traces) * len(abrs),
        unit="session",
        desc="emulate (full)",
        disable=not progress,
        file=sys.stderr,
    )
    (out / "pages").mkdir(exist_ok=True)
    for trace in traces:
        for abr in abrs:
            result, page = full_session(
                Path(ladder_dir), ladder, trace, abr, config, seed=seed, workdir=workdir
            )
            results.append(result)
            (out / "pages" / f"{_safe(trace.name)}.{abr}.json").write_text(json.dumps(page))
            bar.update(1)
    bar.close()
    return results


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:100]
