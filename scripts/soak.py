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

``--attacks`` adds the hostile inputs of issue 29, one client each (``ATTACKS``): malformed
HTTP at 100 requests a second, 64 half-sent requests held open from one address (re-opened as
the server closes them), a page generating a 1024x1024 stream, pages asking for a 2048x2048
stream (refused at open), pages that leave right after ``open``, a page that opens and idles
(closed by the idle timeout, then back), and init states that inflate past their shape. Each
process's output goes to a file whose size is sampled with the rest. ``--each-attack`` runs
every attack alone (fresh processes, a few legitimate clients beside it) for ``--minutes``.

    nice -n 10 python scripts/soak.py --viewers 50 --pages 2 --hostile-pages 1 --minutes 10 \\
        --json docs/benchmarks/soak_cpu-2-core.json --plot docs/benchmarks/soak_cpu-2-core.png
    nice -n 10 python scripts/soak.py --attacks all --minutes 5 \\
        --json docs/benchmarks/soak_attacks_cpu-2-core.json
    nice -n 10 python scripts/soak.py --each-attack --viewers 5 --pages 1 --hostile-pages 0 \\
        --minutes 1 --json docs/benchmarks/soak_each_attack_cpu-2-core.json

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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client_daemon.client import DaemonClient, DaemonError  # noqa: E402
from client_daemon.ready import read_ready_file  # noqa: E402
from common.ports import free_port  # noqa: E402
from common.processes import Child, promptus_command  # noqa: E402
from prompts.ladder import Ladder  # noqa: E402
from prompts.testing import inflating_init_state, one_group_chunk, write_ladder  # noqa: E402
from wire.daemon import Open, StreamSetup  # noqa: E402
from wire.media import ChunkMessage  # noqa: E402
from wire.testing import MALFORMED_REQUEST, PARTIAL_REQUEST, sized_open  # noqa: E402

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
# issue 29's attacks
# the HTTP attacks come from addresses of their own (the per-address limits are per attack)
MALFORMED_ADDRESS, HELD_ADDRESS = "127.0.0.9", "127.0.0.10"
MALFORMED_PER_S = 100  # malformed requests a second
HELD_SOCKETS = 64  # half-sent requests one address keeps open
LARGE_SIZE, LARGE_FRAMES = 1024, 4  # the large page's stream: chunks of one 4-frame group
OVERSIZED = 2048  # a stream size the soak daemon refuses at open (--max-call-mb below)
DAEMON_MAX_CALL_MB = 512  # a 1024x1024 frame takes ~250 MiB in a call, a 2048x2048 one ~1 GiB
DAEMON_IDLE_TIMEOUT_S = 20  # the idle page is closed after this and comes back
DAEMON_SESSIONS = 8  # room for every client and attacker, so refusals are the budget's, not busy
ATTACK_PERIOD_S = 1.0  # the refused pages try once a second


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


# ----------------------------------------------------------------------------- clients


@dataclass
class Window:
    """What the clients saw since the last sample."""

    viewer_s: list[float] = field(default_factory=list)
    page_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    attacks: dict[str, int] = field(default_factory=dict)  # what the attackers sent and got

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def attack(self, kind: str, count: int = 1) -> None:
        self.attacks[kind] = self.attacks.get(kind, 0) + count


def client_address(prefix: str, seed: int):  # noqa: ANN201 - aiohttp is imported late
    """A connector from a loopback address of this client's own (``prefix.N``): real viewers
    come from many addresses, and the server's per-address limits are not what is soaked."""
    import aiohttp

    return aiohttp.TCPConnector(local_addr=(f"{prefix}.{seed % 250 + 1}", 0))


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
    async with aiohttp.ClientSession(connector=client_address("127.0.1", seed)) as http:
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

    async with aiohttp.ClientSession(connector=client_address("127.0.2", seed)) as http:
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
    request = one_group_chunk(ladder.manifest.stream.generator_id, HOSTILE_GROUP, RANK)
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


@dataclass
class Stack:
    """A running server and daemon, and what the clients need to reach them."""

    server: Child
    daemon: Child
    port: int
    daemon_url: str
    gid: str
    ladder: Ladder
    db: Path
    server_log: Path
    daemon_log: Path

    @property
    def server_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


# ----------------------------------------------------------------------------- issue 29's attacks


async def malformed_http(host: str, port: int, window: list[Window], stop: float) -> None:
    """Requests that are not HTTP, MALFORMED_PER_S a second, each on its own connection."""
    while time.time() < stop:
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(MALFORMED_ADDRESS, 0)
            )
            writer.write(MALFORMED_REQUEST)
            answer = await reader.read(64)
            writer.close()
            window[0].attack("malformed answered 400" if b" 400 " in answer else "malformed other")
        except OSError:
            window[0].attack("malformed refused")
        await asyncio.sleep(1 / MALFORMED_PER_S)


async def held_requests(host: str, port: int, window: list[Window], stop: float) -> None:
    """HELD_SOCKETS half-sent requests kept open from one address; those the server closes
    (at once past its per-address limit, or after its header timeout) are opened again."""
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        while time.time() < stop:
            while len(held) < HELD_SOCKETS:
                try:
                    reader, writer = await asyncio.open_connection(
                        host, port, local_addr=(HELD_ADDRESS, 0)
                    )
                    writer.write(PARTIAL_REQUEST)
                    held.append((reader, writer))
                    window[0].attack("held opened")
                except OSError:
                    window[0].attack("held refused at connect")
                    break
            await asyncio.sleep(0.5)
            alive = []
            for reader, writer in held:
                if reader.at_eof() or writer.is_closing():
                    writer.close()
                    window[0].attack("held closed by the server")
                else:
                    alive.append((reader, writer))
            held = alive
    finally:
        for _, writer in held:
            writer.close()


async def large_page(daemon_url: str, gid: str, window: list[Window], stop: float) -> None:
    """A LARGE_SIZE stream: chunks of one LARGE_FRAMES-frame group, back to back."""
    setup, init_state = sized_open(gid, LARGE_SIZE, LARGE_FRAMES)
    chunk = one_group_chunk(gid, LARGE_FRAMES)
    while time.time() < stop:
        try:
            async with await DaemonClient.connect(daemon_url) as daemon:
                await daemon.open(setup, init_state)
                while time.time() < stop:
                    await daemon.seek(0)
                    await daemon.send_chunk(0, 0, chunk)
                    await daemon.chunk_segments()
                    window[0].attack("large chunks generated")
        except Exception as error:  # noqa: BLE001 - every failure is counted
            window[0].error(f"large {type(error).__name__}")
            await asyncio.sleep(1.0)


async def refused_pages(daemon_url: str, gid: str, window: list[Window], stop: float) -> None:
    """Once a period each: an OVERSIZED stream (refused at open), an init state that inflates
    past its shape (refused), and a page that leaves right after its `open`."""
    oversized = sized_open(gid, OVERSIZED, 15)  # 15 frames: exactly --max-chunk-megapixels
    normal = sized_open(gid, SIZE, CHUNK_FRAMES)[0]
    bomb = inflating_init_state()
    while time.time() < stop:
        for kind, setup, init_state in (
            ("oversized", *oversized),
            ("inflating init state", normal, bomb),
        ):
            try:
                async with await DaemonClient.connect(daemon_url) as daemon:
                    await daemon.open(setup, init_state)
                window[0].error(f"{kind} accepted")
            except DaemonError as error:
                window[0].attack(f"{kind} refused ({error.error.code})")
            except Exception as error:  # noqa: BLE001 - every failure is counted
                window[0].error(f"{kind} {type(error).__name__}")
        try:
            leaver = await DaemonClient.connect(daemon_url)
            await leaver.websocket.send(
                Open(stream=normal, init_state=sized_open(gid, SIZE, 1)[1]).encode()
            )
            await leaver.websocket.close()
            window[0].attack("left right after open")
        except Exception as error:  # noqa: BLE001 - every failure is counted
            window[0].error(f"leaver {type(error).__name__}")
        await asyncio.sleep(ATTACK_PERIOD_S)


async def idle_page(daemon_url: str, gid: str, window: list[Window], stop: float) -> None:
    """Opens a stream and sends nothing: the daemon closes it after its idle timeout."""
    setup, init_state = sized_open(gid, SIZE, CHUNK_FRAMES)
    while time.time() < stop:
        try:
            async with await DaemonClient.connect(daemon_url) as daemon:
                await daemon.open(setup, init_state)
                daemon.timeout_s = max(1.0, stop - time.time())
                while True:
                    await daemon.reply()  # status messages, then the idle_timeout error
        except DaemonError as error:
            window[0].attack(f"idle page closed ({error.error.code})")
        except TimeoutError:
            return  # the soak ended first
        except Exception as error:  # noqa: BLE001 - every failure is counted
            window[0].error(f"idle {type(error).__name__}")
            await asyncio.sleep(1.0)


ATTACKS: dict[str, Callable[[Stack, list[Window], float], Coroutine[Any, Any, None]]] = {
    "malformed": lambda stack, window, stop: malformed_http("127.0.0.1", stack.port, window, stop),
    "held": lambda stack, window, stop: held_requests("127.0.0.1", stack.port, window, stop),
    "large": lambda stack, window, stop: large_page(stack.daemon_url, stack.gid, window, stop),
    "refused": lambda stack, window, stop: refused_pages(stack.daemon_url, stack.gid, window, stop),
    "idle": lambda stack, window, stop: idle_page(stack.daemon_url, stack.gid, window, stop),
}


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


SERVER_COUNTERS = (
    "promptus_malformed_requests",
    "promptus_pending_sockets",
    "promptus_refused_pending_sockets",
    "promptus_accept_failures",
    "promptus_unreadable_media",
)


async def server_counters(port: int) -> dict[str, float]:
    """The issue-29 counters of /metrics (asked from the legitimate address)."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("promptus_"))
    return {name: float(values[name]) for name in SERVER_COUNTERS if name in values}


async def measure(args: argparse.Namespace, stack: Stack, attacks: list[str]) -> dict:
    window = [Window()]
    started = time.time()
    stop = started + args.minutes * 60
    clients = [
        *(viewer(stack.server_url, window, stop, seed) for seed in range(args.viewers)),
        *(
            page(stack.server_url, stack.daemon_url, window, stop, seed)
            for seed in range(args.pages)
        ),
        *(
            hostile_page(stack.daemon_url, stack.ladder, window, stop)
            for _ in range(args.hostile_pages)
        ),
        *(ATTACKS[name](stack, window, stop) for name in attacks),
    ]
    tasks = [asyncio.create_task(c) for c in clients]
    samples = []
    with tqdm(total=round(args.minutes * 60), unit="s", desc=f"soak {','.join(attacks)}") as bar:
        while time.time() < stop:
            await asyncio.sleep(min(args.sample_s, max(0.0, stop - time.time())))
            done, window[0] = window[0], Window()
            stack.server.check_alive()
            stack.daemon.check_alive()
            samples.append(
                {
                    "t_s": round(time.time() - started, 1),
                    "server": tree_sample(stack.server.pid),
                    "daemon": process_sample(stack.daemon.pid),
                    "server_log_bytes": stack.server_log.stat().st_size,
                    "daemon_log_bytes": stack.daemon_log.stat().st_size,
                    "server_counters": await server_counters(stack.port),
                    "db_bytes": database_bytes(stack.db),
                    "viewer_gets": len(done.viewer_s),
                    "viewer_p99_ms": p99_ms(done.viewer_s),
                    "page_segments": len(done.page_s),
                    "page_p99_ms": p99_ms(done.page_s),
                    "errors": done.errors,
                    "attacks": done.attacks,
                    "load_1m": os.getloadavg()[0],  # the machine is shared: what else ran
                }
            )
            bar.update(round(time.time() - started) - bar.n)
            last = samples[-1]
            bar.set_postfix(
                server=f"{last['server']['rss_mib']:.0f}MiB",
                daemon=f"{last['daemon']['rss_mib']:.0f}MiB",
                logs=f"{last['server_log_bytes'] + last['daemon_log_bytes']}B",
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
        "server_log_bytes": lambda r: r["server_log_bytes"],
        "daemon_log_bytes": lambda r: r["daemon_log_bytes"],
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
    attacks: dict[str, int] = {}
    for row in samples:
        for kind, count in row["attacks"].items():
            attacks[kind] = attacks.get(kind, 0) + count
    out["attacks"] = attacks
    out["server_counters"] = samples[-1]["server_counters"] if samples else {}
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


def start_stack(work: Path, args: argparse.Namespace) -> Stack:
    """A daemon and a server over a fresh ladder in ``work``, their output in files there."""
    media, db, ready = work / "media", work / "telemetry.sqlite3", work / "ready.json"
    media.mkdir()
    daemon_log, server_log = work / "daemon.log", work / "server.log"
    with daemon_log.open("wb") as output:
        daemon = Child(
            "daemon",
            promptus_command("daemon", "--port", "0", "--generator", "tiny", "--device", "cpu")
            + ["--ready-file", str(ready), "--max-call-mb", str(DAEMON_MAX_CALL_MB)]
            + [
                "--idle-timeout",
                str(DAEMON_IDLE_TIMEOUT_S),
                "--max-sessions",
                str(DAEMON_SESSIONS),
            ],
            env={"OMP_NUM_THREADS": "1"},
            output=output,
        )
    try:
        announced = read_ready_file(daemon.wait_for_file(ready, START_TIMEOUT_S))
        build_ladder(media / CHANNEL, announced.generator_id)
        port = free_port()
        with server_log.open("wb") as output:
            server = Child(
                "serve",
                promptus_command("serve", "--media", str(media), "--port", str(port))
                + ["--telemetry", str(db), "--telemetry-max-mb", str(args.telemetry_max_mb)]
                + ["--telemetry-prune-every", "10", "--max-per-address", "0"],
                output=output,
            )
        server.wait_for_http(f"http://127.0.0.1:{port}/healthz", START_TIMEOUT_S)
    except BaseException:
        daemon.stop()
        raise
    return Stack(
        server, daemon, port, announced.url, announced.generator_id, Ladder(media / CHANNEL), db,
        server_log, daemon_log,
    )  # fmt: skip


def run(args: argparse.Namespace, attacks: list[str]) -> dict:
    """One soak on fresh processes: its samples and summary (their logs kept in --logs)."""
    work = Path(tempfile.mkdtemp(prefix="promptus-soak-"))
    try:
        stack = start_stack(work, args)
        try:
            result = asyncio.run(measure(args, stack, attacks))
        finally:
            stack.server.stop()
            stack.daemon.stop()
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                name = "-".join(attacks) or "none"
                for log in (stack.server_log, stack.daemon_log):
                    shutil.copy(log, args.logs / f"{name}-{log.name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"attacks": attacks, "summary": summary(result["samples"]), **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--hostile-pages", type=int, default=1)
    parser.add_argument(
        "--attacks",
        default="",
        help=f"comma-separated issue-29 attacks beside the clients, or 'all' ({', '.join(ATTACKS)})",
    )
    parser.add_argument(
        "--each-attack",
        action="store_true",
        help="run each attack alone, on fresh processes, for --minutes each",
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--telemetry-max-mb",
        type=float,
        default=8.0,
        help="the server's size cap (small: it binds)",
    )
    parser.add_argument("--json", type=Path, help="raw samples and summary")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this folder")
    parser.add_argument("--plot", type=Path, help="PNG of the four series over time")
    args = parser.parse_args()
    attacks = list(ATTACKS) if args.attacks == "all" else [a for a in args.attacks.split(",") if a]
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown attacks {unknown}; expected some of {', '.join(ATTACKS)}")

    started = time.time()
    if args.each_attack:
        runs = [run(args, [name]) for name in ATTACKS]
    else:
        runs = [run(args, attacks)]
    record = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, load average at the end "
        f"{os.getloadavg()[0]:.1f}",
        "ran_minutes": round((time.time() - started) / 60, 1),
        "config": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "stream": f"{SIZE}x{SIZE} tiny generator, {CHUNK_FRAMES}-frame chunks at {FPS} fps",
            "daemon": f"--max-call-mb {DAEMON_MAX_CALL_MB} --idle-timeout {DAEMON_IDLE_TIMEOUT_S} "
            f"--max-sessions {DAEMON_SESSIONS}",
        },
        **(
            {"runs": runs}
            if args.each_attack
            else {"summary": runs[0]["summary"], "samples": runs[0]["samples"]}
        ),
    }
    summaries = {",".join(r["attacks"]) or "none": r["summary"] for r in runs}
    print(json.dumps(summaries, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    if args.plot and not args.each_attack:
        plot(
            runs[0]["samples"],
            args.plot,
            f"soak: {args.viewers} viewers, {args.pages} pages, {args.hostile_pages} hostile page"
            + (f", attacks {','.join(attacks)}" if attacks else ""),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
