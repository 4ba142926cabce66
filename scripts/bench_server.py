#!/usr/bin/env python3
"""Load benchmark of the media server: N simulated viewers on loopback, each fetching a ~225 kbps
ladder in real time (one 2 s chunk every 2 s, plus acks and a stats report every second).

The server runs as `promptus serve` in its own process (one process = at most one core,
pinned to CPU 0 when the machine has more than one); viewers run in other processes
(pinned to the remaining CPUs). For each viewer count it reports chunk latency (request
sent -> whole chunk received) p50/p99/max, errors, the server's CPU use and the clients'
own scheduling lag (when that is high, the clients, not the server, are the bottleneck).

    python scripts/bench_server.py --viewers 1000,2000 --duration 20 --json docs/benchmarks/server_load.json

`viewers_per_core` in the JSON is the largest tested viewer count that one server process
sustained with p99 < 50 ms and zero errors, it and every smaller count tested.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchkit import command_line, write_document  # noqa: E402

from common.ports import free_port  # noqa: E402
from prompts.keyframe import Keyframe, keyframe_positions  # noqa: E402
from prompts.ladder import LadderWriter, split_into_chunks  # noqa: E402
from prompts.manifest import StreamInfo  # noqa: E402
from prompts.quant import quantize_tensor  # noqa: E402

P99_TARGET_MS = 50.0  # the target
CHUNK_FRAMES = 60  # 2 s at 30 fps
RANK, INTERVAL = 9, 10  # 9.9 KB per keyframe, 6 per chunk: ~240 kbps (at least the 225 kbps asked)
STREAM_CHUNKS = 15  # 30 s of stream; viewers loop over it
RECEIVE_TIMEOUT_S = 5.0  # a chunk slower than this counts as an error
CONNECT_SPREAD_S = 4.0  # viewers connect spread over this long before measuring


def build_ladder(path: Path) -> int:
    """A one-level ladder of random keyframes (uniform, so incompressible); returns its kbps."""
    frames = STREAM_CHUNKS * CHUNK_FRAMES
    stream = StreamInfo(
        fps=30,
        width=512,
        height=512,
        frames=frames,
        chunk_frames=CHUNK_FRAMES,
        generator_id="bench:0",
        generator_name="bench",
    )
    writer = LadderWriter(path, stream, [("r8n10", RANK, INTERVAL)])
    writer.write_init_state(np.zeros((1, 4, 64, 64), np.float32))
    rng = np.random.RandomState(0)
    keyframes = [
        Keyframe(
            p,
            quantize_tensor(rng.rand(77, RANK).astype(np.float32)),
            quantize_tensor(rng.rand(RANK, 1024).astype(np.float32)),
        )
        for p in keyframe_positions(frames, INTERVAL)
    ]
    for chunk in split_into_chunks(keyframes, stream, level=0, interval=INTERVAL):
        writer.append_chunk(0, chunk)
    return round(writer.finish().levels[0].kbps)


# ----------------------------------------------------------------------------- client side


async def run_viewers(
    url: str, count: int, start_at: float, end_at: float, measure_from: float, seed: int
) -> dict:
    import aiohttp

    from wire.framing import HEADER_LENGTH
    from wire.media import Ack, Get, Hello, Stats

    rng = random.Random(seed)
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    received_bytes = 0

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def viewer(session: aiohttp.ClientSession, connect_at: float) -> None:
        nonlocal received_bytes
        await asyncio.sleep(max(0.0, connect_at - time.time()))
        try:
            ws = await session.ws_connect(url, max_msg_size=64 * 1024 * 1024, compress=0)
        except Exception as exc:  # noqa: BLE001 - every failure is counted, not raised
            error(f"connect: {type(exc).__name__}")
            return
        try:
            await ws.send_str(
                Hello(channel="bench", abr="bench", user_agent="bench_server.py").encode()
            )
            manifest = json.loads((await ws.receive(timeout=RECEIVE_TIMEOUT_S)).data)["manifest"]
            await ws.receive(timeout=RECEIVE_TIMEOUT_S)  # init_state
            sizes = [c["bytes"] for c in manifest["levels"][0]["chunks"]]
            # encoded once: the clients must stay cheap so that they, not the server, are not the limit
            gets = [Get(chunk=i, level=0).encode() for i in range(len(sizes))]
            acks = [Ack(chunk=i, level=0).encode() for i in range(len(sizes))]
            stats = Stats(
                buffer_s=6.0, stalls=0, stall_s=0.0, level=0, throughput_kbps=5000.0
            ).encode()
            chunk = rng.randrange(len(sizes))
            period = CHUNK_FRAMES / manifest["fps"]
            due = max(time.time(), measure_from - period) + rng.random() * period
            while due < end_at:
                await asyncio.sleep(max(0.0, due - time.time()))
                sent = time.time()
                measuring = sent >= measure_from
                if measuring:
                    lags.append(sent - due)
                await ws.send_str(gets[chunk])
                message = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
                latency = time.time() - sent
                if message.type is not aiohttp.WSMsgType.BINARY:
                    error(f"answer: {message.type.name} {str(message.data)[:60]}")
                    return
                data = message.data
                header_len = HEADER_LENGTH.unpack_from(data)[0]
                if (
                    json.loads(data[4 : 4 + header_len])["chunk"] != chunk
                    or len(data) - 4 - header_len != sizes[chunk]
                ):
                    error("wrong chunk")
                if measuring:
                    latencies.append(latency)
                    received_bytes += len(data)
                await ws.send_str(acks[chunk])
                await ws.send_str(stats)
                await asyncio.sleep(max(0.0, due + period / 2 - time.time()))
                await ws.send_str(stats)
                chunk = (chunk + 1) % len(sizes)
                due += period
        except TimeoutError:
            error("timeout")
        except Exception as exc:  # noqa: BLE001
            error(f"{type(exc).__name__}: {str(exc)[:60]}")
        finally:
            await ws.close()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        spread = [start_at + CONNECT_SPREAD_S * i / max(1, count) for i in range(count)]
        await asyncio.gather(*(viewer(session, at) for at in spread))
    return {"latencies": latencies, "lags": lags, "errors": errors, "bytes": received_bytes}


def client_process(
    url: str,
    count: int,
    start_at: float,
    end_at: float,
    measure_from: float,
    seed: int,
    cpus: set[int],
    results: multiprocessing.Queue,
) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    results.put(asyncio.run(run_viewers(url, count, start_at, end_at, measure_from, seed)))


# ----------------------------------------------------------------------------- server side


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_healthy(port: int, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def run_once(
    media: Path,
    viewers: int,
    clients: int,
    duration: float,
    server_cpus: set[int],
    client_cpus: set[int],
    server_args: list[str],
    log_dir: Path | None,
) -> dict:
    port = free_port()
    log = open(log_dir / f"server-{viewers}.log", "wb") if log_dir else subprocess.DEVNULL  # noqa: SIM115
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promptus.cli",
            "serve",
            "--media",
            str(media),
            "--port",
            str(port),
            "--max-viewers",
            str(viewers + 100),
            "--max-per-address",  # every simulated viewer comes from 127.0.0.1
            "0",
            "--telemetry",
            str(media / "telemetry.sqlite3"),
            *server_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        },
    )
    try:
        if server_cpus:
            os.sched_setaffinity(server.pid, server_cpus)
        wait_healthy(port)
        start_at = time.time() + 1.0
        measure_from = start_at + CONNECT_SPREAD_S + 2.0
        end_at = measure_from + duration
        results: multiprocessing.Queue = multiprocessing.Queue()
        shares = [viewers // clients + (i < viewers % clients) for i in range(clients)]
        processes = [
            multiprocessing.Process(
                target=client_process,
                args=(
                    f"ws://127.0.0.1:{port}/ws",
                    share,
                    start_at,
                    end_at,
                    measure_from,
                    i,
                    client_cpus,
                    results,
                ),
            )
            for i, share in enumerate(shares)
        ]
        for process in processes:
            process.start()
        time.sleep(max(0.0, measure_from - time.time()))
        cpu_start, wall_start = cpu_seconds(server.pid), time.time()
        time.sleep(max(0.0, end_at - time.time()))
        server_cores = (cpu_seconds(server.pid) - cpu_start) / (time.time() - wall_start)
        parts = [results.get(timeout=duration + 60) for _ in processes]
        for process in processes:
            process.join(timeout=30)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies = np.array([x for p in parts for x in p["latencies"]]) * 1000
    lags = np.array([x for p in parts for x in p["lags"]]) * 1000
    errors: dict[str, int] = {}
    for part in parts:
        for kind, n in part["errors"].items():
            errors[kind] = errors.get(kind, 0) + n

    def pct(values: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(values, q)), 2) if values.size else None

    return {
        "viewers": viewers,
        "client_processes": clients,
        "duration_s": duration,
        "chunks": int(latencies.size),
        "p50_ms": pct(latencies, 50),
        "p99_ms": pct(latencies, 99),
        "max_ms": round(float(latencies.max()), 2) if latencies.size else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "server_cpu_cores": round(server_cores, 3),
        "client_lag_p99_ms": pct(lags, 99),
        "delivered_mbps": round(sum(p["bytes"] for p in parts) * 8 / duration / 1e6, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="500,1000,2000", help="comma-separated viewer counts")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds per viewer count"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the raw result here")
    parser.add_argument(
        "--server-log", type=Path, default=None, help="folder for the server's logs"
    )
    parser.add_argument(
        "--server-args", default="", help="extra `promptus serve` arguments, e.g. '--telemetry off'"
    )
    args = parser.parse_args()
    counts = [int(v) for v in args.viewers.split(",")]
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, client_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (set(), set())
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp)
        kbps = build_ladder(media / "bench")
        print(
            f"ladder: {kbps} kbps per viewer; server on CPUs {sorted(server_cpus) or 'any'}, "
            f"{args.clients} client processes on CPUs {sorted(client_cpus) or 'any'}; load {os.getloadavg()}"
        )
        print(
            f"{'viewers':>8} {'chunks':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} "
            f"{'srv cores':>9} {'client lag p99':>14} {'Mbit/s':>7}"
        )
        runs = []
        for viewers in counts:
            run = run_once(
                media,
                viewers,
                args.clients,
                args.duration,
                server_cpus,
                client_cpus,
                shlex.split(args.server_args),
                args.server_log,
            )
            runs.append(run)
            print(
                f"{viewers:>8} {run['chunks']:>7} {run['p50_ms']:>7} {run['p99_ms']:>7} {run['max_ms']:>7} "
                f"{run['errors']:>6} {run['server_cpu_cores']:>9} {run['client_lag_p99_ms']:>14} "
                f"{run['delivered_mbps']:>7}",
                flush=True,
            )
    # sustained = this count and every smaller one tested met the target (one lucky run is not enough)
    best = None
    for run in sorted(runs, key=lambda r: r["viewers"]):
        if run["errors"] or run["p99_ms"] is None or run["p99_ms"] >= P99_TARGET_MS:
            break
        best = run
    result = {
        "benchmark": "scripts/bench_server.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command_line(),
        "machine": {
            "cpus": len(cpus),
            "processor": cpu_model(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "server_args": args.server_args,
        "ladder_kbps": kbps,
        "p99_target_ms": P99_TARGET_MS,
        "viewers_per_core": best["viewers"] if best else 0,
        "p99_ms": best["p99_ms"] if best else (runs[-1]["p99_ms"] if runs else None),
        "errors": best["errors"] if best else (runs[-1]["errors"] if runs else None),
        "runs": runs,
    }
    print(
        f"viewers_per_core (largest count that, with every smaller one, had p99 < {P99_TARGET_MS:g} ms and no "
        f"errors; one server process): "
        f"{result['viewers_per_core']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_document(args.json, result, quiet=True)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
