#!/usr/bin/env python3
"""Soak benchmark: N viewers and M pages against a real ``promptus serve`` and a real
``promptus daemon`` for a given time, sampling every few seconds what must stay flat: each
process's resident memory, open files and threads, the telemetry database's size, and the
p99 latency of the window (viewers: ``get`` -> whole chunk; pages: chunk -> media segment).

Viewers behave as the heaviest legitimate player: they join, fetch and ack one chunk every
chunk period, and send a full-size ``stats`` report (16 long extra fields) every second, so
the telemetry store meets its per-connection row bound and its size cap within minutes.
Pages do what the browser page does: fetch a chunk from the server and forward it to the
daemon, one chunk per second each, and seek back to chunk 0 at the end of the stream. One
optional hostile page sends chunks of the longest generation group the daemon's budget
allows, as fast as it is answered.

    nice -n 10 python scripts/soak.py --viewers 50 --pages 2 --hostile-pages 1 --minutes 10 \\
        --json docs/benchmarks/soak_cpu-2-core.json --plot docs/benchmarks/soak_cpu-2-core.png

Not part of CI. Raw samples go to ``--json``; the plot shows the four series over time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client_daemon.client import DaemonClient  # noqa: E402
from client_daemon.ready import read_ready_file  # noqa: E402
from common.processes import Child, promptus_command  # noqa: E402
from prompts.chunk import PromptChunk, encode_chunk  # noqa: E402
from prompts.ladder import Ladder  # noqa: E402
from tests.ladders import write_ladder  # noqa: E402
from tests.prompts.factories import random_keyframe  # noqa: E402
from wire.daemon import StreamSetup  # noqa: E402
from wire.media import ChunkMessage  # noqa: E402

CHANNEL = "soak"
SIZE = 64  # pixels: the tiny generator keeps up on shared CPU cores
FPS = 30
CHUNK_FRAMES = 30  # 1 s chunks
INTERVAL = 10
RANK = 4
STREAM_CHUNKS = 20  # 20 s of stream; clients loop over it
HOSTILE_GROUP = 60  # the daemon's default max_group_frames
PAGE_PERIOD_S = 1.0  # a page forwards one chunk a second
STATS_PERIOD_S = 1.0
START_TIMEOUT_S = 180.0


# ----------------------------------------------------------------------------- the ladder


def build_ladder(path: Path, generator_id: str) -> None:
    """One level of random keyframes for ``generator_id`` (the pictures mean nothing)."""
    write_ladder(
        path,
        generator_id,
        levels=[("r4n10", RANK, INTERVAL)],
        frames=STREAM_CHUNKS * CHUNK_FRAMES,
        fps=FPS,
        size=SIZE,
        chunk_frames=CHUNK_FRAMES,
    )


def hostile_chunk(generator_id: str) -> bytes:
    """Chunk 0 of a HOSTILE_GROUP-frame stream with keyframes only at its ends."""
    keyframes = (random_keyframe(0, RANK), random_keyframe(HOSTILE_GROUP, RANK))
    return encode_chunk(
        PromptChunk(generator_id, 0, 0, 0, HOSTILE_GROUP, HOSTILE_GROUP, RANK, keyframes)
    )


# ----------------------------------------------------------------------------- clients


@dataclass
class Window:
    """What the clients saw since the last sample."""

    viewer_s: list[float] = field(default_factory=list)
    page_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def full_size_stats() -> str:
    fields = {f"k{i:02d}_" + "x" * 60: "y" * 128 for i in range(16)}
    return json.dumps(
        {"type": "stats", "buffer_s": 4.0, "stalls": 0, "stall_s": 0.0, "level": 0, **fields}
    )


async def viewer(url: str, window: list[Window], stop: float, seed: int) -> None:
    import aiohttp

    from server.client import ViewerClient

    stats = full_size_stats()
    rng = np.random.default_rng(seed)
    async with aiohttp.ClientSession() as http:
        while time.time() < stop:
            try:
                client = await ViewerClient.connect(http, url)
                await client.hello(CHANNEL, abr="soak")
                chunk = int(rng.integers(STREAM_CHUNKS))
                due = time.time() + rng.random() * CHUNK_FRAMES / FPS
                while time.time() < stop:
                    await asyncio.sleep(max(0.0, due - time.time()))
                    sent = time.monotonic()
                    await client.get(chunk, 0)
                    window[0].viewer_s.append(time.monotonic() - sent)
                    for _ in range(round(CHUNK_FRAMES / FPS / STATS_PERIOD_S)):
                        await client.send(stats)
                    chunk = (chunk + 1) % STREAM_CHUNKS
                    due += CHUNK_FRAMES / FPS
                await client.close()
            except Exception as error:  # noqa: BLE001 - every failure is counted
                window[0].error(f"viewer {type(error).__name__}")
                await asyncio.sleep(1.0)


async def page(
    server_url: str, daemon_url: str, window: list[Window], stop: float, seed: int
) -> None:
    """A browser page: chunks from the server, forwarded unchanged to the daemon."""
    import aiohttp

    from server.client import ViewerClient

    async with aiohttp.ClientSession() as http:
        while time.time() < stop:
            try:
                server = await ViewerClient.connect(http, server_url)
                manifest, init_state = await server.hello(CHANNEL, abr="soak-page")
                async with await DaemonClient.connect(daemon_url) as daemon:
                    await daemon.open(StreamSetup.from_manifest(manifest), init_state)
                    chunk = 0
                    due = time.time() + seed % 10 / 10
                    while time.time() < stop:
                        await asyncio.sleep(max(0.0, due - time.time()))
                        message = await server.get(chunk, 0)
                        sent = time.monotonic()
                        await daemon.websocket.send(
                            ChunkMessage(CHANNEL, 0, chunk, message.data, message.prefix).encode()
                        )
                        await daemon.chunk_segments()
                        window[0].page_s.append(time.monotonic() - sent)
                        chunk = (chunk + 1) % STREAM_CHUNKS
                        if chunk == 0:
                            await daemon.seek(0)
                        due += PAGE_PERIOD_S
                await server.close()
            except Exception as error:  # noqa: BLE001 - every failure is counted
                window[0].error(f"page {type(error).__name__}")
                await asyncio.sleep(1.0)


async def hostile_page(daemon_url: str, ladder: Ladder, window: list[Window], stop: float) -> None:
    """Chunks of the longest group the budget allows, back to back."""
    request = hostile_chunk(ladder.manifest.stream.generator_id)
    setup = replace(
        StreamSetup.from_manifest(ladder.manifest.to_json()), chunk_frames=HOSTILE_GROUP
    )
    while time.time() < stop:
        try:
            async with await DaemonClient.connect(daemon_url) as daemon:
                await daemon.open(setup, ladder.init_state_bytes())
                while time.time() < stop:
                    await daemon.seek(0)
                    await daemon.send_chunk(0, 0, request)
                    await daemon.chunk_segments()
        except Exception as error:  # noqa: BLE001 - every failure is counted
            window[0].error(f"hostile {type(error).__name__}")
            await asyncio.sleep(1.0)


# ----------------------------------------------------------------------------- sampling


def process_sample(pid: int) -> dict[str, float]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
        "open_files": len(os.listdir(f"/proc/{pid}/fd")),
    }


def tree_sample(pid: int) -> dict[str, float]:
    """The process and its children (a --workers server), summed."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    samples = [process_sample(p) for p in pids]
    return {key: sum(s[key] for s in samples) for key in samples[0]}


def database_bytes(path: Path) -> int:
    return sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


def p99_ms(values: list[float]) -> float | None:
    return float(np.percentile(values, 99) * 1000) if values else None


async def measure(args: argparse.Namespace, server: Child, daemon: Child, urls, db: Path) -> dict:  # noqa: ANN001
    server_url, daemon_url, ladder = urls
    window = [Window()]
    started = time.time()
    stop = started + args.minutes * 60
    clients = [
        *(viewer(server_url, window, stop, seed) for seed in range(args.viewers)),
        *(page(server_url, daemon_url, window, stop, seed) for seed in range(args.pages)),
        *(hostile_page(daemon_url, ladder, window, stop) for _ in range(args.hostile_pages)),
    ]
    tasks = [asyncio.create_task(c) for c in clients]
    samples = []
    with tqdm(total=round(args.minutes * 60), unit="s", desc="soak") as bar:
        while time.time() < stop:
            await asyncio.sleep(min(args.sample_s, max(0.0, stop - time.time())))
            done, window[0] = window[0], Window()
            server.check_alive()
            daemon.check_alive()
            samples.append(
                {
                    "t_s": round(time.time() - started, 1),
                    "server": tree_sample(server.pid),
                    "daemon": process_sample(daemon.pid),
                    "db_bytes": database_bytes(db),
                    "viewer_gets": len(done.viewer_s),
                    "viewer_p99_ms": p99_ms(done.viewer_s),
                    "page_segments": len(done.page_s),
                    "page_p99_ms": p99_ms(done.page_s),
                    "errors": done.errors,
                    "load_1m": os.getloadavg()[0],  # the machine is shared: what else ran
                }
            )
            bar.update(round(time.time() - started) - bar.n)
            last = samples[-1]
            bar.set_postfix(
                server=f"{last['server']['rss_mib']:.0f}MiB",
                daemon=f"{last['daemon']['rss_mib']:.0f}MiB",
                db=f"{last['db_bytes'] / 1e6:.1f}MB",
            )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"samples": samples}


def summary(samples: list[dict]) -> dict:
    """First and last minute of each series (the drift) and their maxima."""
    span = max(1, len(samples) // 10)
    head, tail = samples[:span], samples[-span:]

    def mean(rows: list[dict], pick) -> float:  # noqa: ANN001
        values = [v for v in (pick(r) for r in rows) if v is not None]
        return round(float(np.mean(values)), 2) if values else float("nan")

    series = {
        "server_rss_mib": lambda r: r["server"]["rss_mib"],
        "daemon_rss_mib": lambda r: r["daemon"]["rss_mib"],
        "server_open_files": lambda r: r["server"]["open_files"],
        "daemon_open_files": lambda r: r["daemon"]["open_files"],
        "server_threads": lambda r: r["server"]["threads"],
        "daemon_threads": lambda r: r["daemon"]["threads"],
        "db_mb": lambda r: r["db_bytes"] / 1e6,
        "viewer_p99_ms": lambda r: r["viewer_p99_ms"],
        "page_p99_ms": lambda r: r["page_p99_ms"],
    }
    out = {}
    for name, pick in series.items():
        values = [v for v in (pick(r) for r in samples) if v is not None]
        out[name] = {
            "first": mean(head, pick),
            "last": mean(tail, pick),
            "max": round(float(max(values)), 2) if values else None,
        }
    out["errors"] = sum(sum(r["errors"].values()) for r in samples)
    out["viewer_gets"] = sum(r["viewer_gets"] for r in samples)
    out["page_segments"] = sum(r["page_segments"] for r in samples)
    return out


def plot(samples: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    panels = (
        ("resident memory (MiB)", [("server", lambda s: s["server"]["rss_mib"]), ("daemon", lambda s: s["daemon"]["rss_mib"])]),
        ("open files", [("server", lambda s: s["server"]["open_files"]), ("daemon", lambda s: s["daemon"]["open_files"])]),
        ("telemetry database (MB, with WAL)", [("db", lambda s: s["db_bytes"] / 1e6)]),
        ("p99 latency of the window (ms)", [("viewer get", lambda s: s["viewer_p99_ms"]), ("page chunk->segment", lambda s: s["page_p99_ms"])]),
    )  # fmt: skip
    for ax, (label, lines) in zip(axes.flat, panels, strict=True):
        for name, pick in lines:
            ax.plot(t, [pick(s) if pick(s) is not None else np.nan for s in samples], label=name)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--hostile-pages", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--telemetry-max-mb",
        type=float,
        default=8.0,
        help="the server's size cap (small: it binds)",
    )
    parser.add_argument("--json", type=Path, help="raw samples and summary")
    parser.add_argument("--plot", type=Path, help="PNG of the four series over time")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="promptus-soak-"))
    media, db, ready = work / "media", work / "telemetry.sqlite3", work / "ready.json"
    media.mkdir()
    daemon = Child(
        "daemon",
        promptus_command("daemon", "--port", "0", "--generator", "tiny", "--device", "cpu")
        + ["--ready-file", str(ready)],
        env={"OMP_NUM_THREADS": "1"},
    )
    server: Child | None = None
    try:
        announced = read_ready_file(daemon.wait_for_file(ready, START_TIMEOUT_S))
        build_ladder(media / CHANNEL, announced.generator_id)
        port = free_port()
        server = Child(
            "serve",
            promptus_command("serve", "--media", str(media), "--port", str(port))
            + ["--telemetry", str(db), "--telemetry-max-mb", str(args.telemetry_max_mb)]
            + ["--telemetry-prune-every", "10", "--max-per-address", "0"],
        )
        server.wait_for_http(f"http://127.0.0.1:{port}/healthz", START_TIMEOUT_S)
        urls = (f"ws://127.0.0.1:{port}/ws", announced.url, Ladder(media / CHANNEL))
        result = asyncio.run(measure(args, server, daemon, urls, db))
    finally:
        if server is not None:
            server.stop()
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    record = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, load average at the end "
        f"{os.getloadavg()[0]:.1f}",
        "config": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "stream": f"{SIZE}x{SIZE} tiny generator, {CHUNK_FRAMES}-frame chunks at {FPS} fps",
        },
        "summary": summary(result["samples"]),
        **result,
    }
    print(json.dumps(record["summary"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    if args.plot:
        plot(
            result["samples"],
            args.plot,
            f"soak: {args.viewers} viewers, {args.pages} pages, {args.hostile_pages} hostile page",
        )
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
