"""Kernel link shaping between two network namespaces that the run creates and removes.

Topology (nothing is added to the machine's own namespace)::

    [server ns]  veth-s 10.x.y.1  ==== tbf (downlink, follows the trace) ====>  veth-v 10.x.y.2  [viewer ns]
                                  <=== tbf (uplink, fixed cap) ==============

The downlink rate follows a ``Trace``: ``TracePlayer`` changes the server side's ``tbf`` rate at
every trace segment (segments shorter than ``MIN_UPDATE_S`` are merged by their mean), keeping the
queue. The queue is a byte limit on the ``tbf`` (a drop-tail buffer, like mahimahi's). This kernel
has no ``netem`` (``CONFIG_NET_SCH_NETEM`` is off), so a base delay cannot be added by ``tc``; the
full mode adds it in user space (``emulation.delay_relay``).

Every loop is bounded in count and time; ``ShapedPair`` kills the processes left in its namespaces
and deletes them on exit, also after an exception.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from common.errors import UserError
from emulation.traces import Trace

NS_PREFIX = "promptus-emu-"
MTU_BYTES = 1500
MIN_RATE_KBIT = 8  # kbit/s; tbf needs a positive rate, so an outage is shaped to this
MIN_UPDATE_S = 0.1  # s; shortest interval between two rate changes
TC_TIMEOUT_S = 5.0  # s; any single ip/tc call
SUBNET_POOL = ipaddress.IPv4Network("10.203.0.0/16")  # only ever inside the run's own namespaces
KILL_WAIT_S = 2.0  # s; grace before SIGKILL at teardown


class NetnsError(UserError, RuntimeError):
    """Namespaces or shaping could not be set up (message says what and how to fix it)."""


@dataclass(frozen=True)
class LinkSpec:
    """Shaping parameters."""

    queue_packets: int = 200  # drop-tail queue of the downlink, in MTU-sized packets
    uplink_mbps: float = 12.0  # Puffer's emulation capped the uplink at 12 Mbit/s


def _run(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=TC_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise NetnsError(f"{' '.join(args)} did not finish within {TC_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(args)} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def check_available() -> None:
    """Raises ``NetnsError`` unless ``ip`` and ``tc`` exist and namespaces can be created."""
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise NetnsError(f"`{tool}` is missing: apt-get install -y iproute2")
    if os.geteuid() != 0:
        raise NetnsError("network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")


def our_namespaces() -> list[str]:
    """Namespaces whose name carries this module's prefix."""
    out = _run(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.startswith(NS_PREFIX)]


def _tbf_args(mbps: float, queue_bytes: int) -> list[str]:
    kbit = max(MIN_RATE_KBIT, round(mbps * 1000))
    # Burst: at least two packets, and enough for one 1 ms timer tick at this rate.
    burst = max(2 * MTU_BYTES, kbit * 1000 // 8 // 1000)
    return [
        "tbf",
        "rate",
        f"{kbit}kbit",
        "burst",
        str(burst),
        "limit",
        str(max(queue_bytes, burst)),
    ]


class ShapedPair:
    """Two fresh namespaces joined by a veth pair, with tbf shaping both ways."""

    def __init__(self, spec: LinkSpec = LinkSpec(), initial_mbps: float = 10.0) -> None:
        self.spec = spec
        token = secrets.token_hex(3)
        self.server_ns = f"{NS_PREFIX}{os.getpid()}-{token}-srv"
        self.viewer_ns = f"{NS_PREFIX}{os.getpid()}-{token}-view"
        self.server_if = f"pe{token}s"  # interface names are limited to 15 characters
        self.viewer_if = f"pe{token}v"
        subnet = list(SUBNET_POOL.subnets(new_prefix=30))[secrets.randbelow(2**14)]
        hosts = list(subnet.hosts())
        self.server_ip, self.viewer_ip = str(hosts[0]), str(hosts[1])
        self._prefix = subnet.prefixlen
        self._initial_mbps = initial_mbps
        self.downlink_mbps = initial_mbps
        self._created: list[str] = []

    @property
    def queue_bytes(self) -> int:
        return self.spec.queue_packets * MTU_BYTES

    def exec_prefix(self, ns: str) -> list[str]:
        """Command prefix that runs a program inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns]

    def __enter__(self) -> ShapedPair:
        check_available()
        try:
            for ns in (self.server_ns, self.viewer_ns):
                _run(["ip", "netns", "add", ns])
                self._created.append(ns)
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    self.server_if,
                    "netns",
                    self.server_ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    self.viewer_if,
                    "netns",
                    self.viewer_ns,
                ]
            )
            for ns, dev, ip in (
                (self.server_ns, self.server_if, self.server_ip),
                (self.viewer_ns, self.viewer_if, self.viewer_ip),
            ):
                _run(["ip", "-n", ns, "addr", "add", f"{ip}/{self._prefix}", "dev", dev])
                _run(["ip", "-n", ns, "link", "set", dev, "up"])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
                # No offloads: tbf must see MTU-sized packets, not 64 KB super-packets.
                _run(
                    [
                        *self.exec_prefix(ns),
                        "ip",
                        "link",
                        "set",
                        dev,
                        "gso_max_size",
                        "1500",
                        "gro_max_size",
                        "1500",
                    ]
                )
            _run(
                [
                    *self.exec_prefix(self.server_ns),
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    self.server_if,
                    "root",
                    *_tbf_args(self._initial_mbps, self.queue_bytes),
                ]
            )
            _run(
                [
                    *self.exec_prefix(self.viewer_ns),
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    self.viewer_if,
                    "root",
                    *_tbf_args(self.spec.uplink_mbps, self.queue_bytes),
                ]
            )
        except BaseException:
            self.close()
            raise
        return self

    def set_downlink(self, mbps: float) -> None:
        """Change the downlink rate (the queue is kept)."""
        _run(
            [
                *self.exec_prefix(self.server_ns),
                "tc",
                "qdisc",
                "change",
                "dev",
                self.server_if,
                "root",
                *_tbf_args(mbps, self.queue_bytes),
            ]
        )
        self.downlink_mbps = mbps

    def close(self) -> None:
        """Kill what still runs inside our namespaces, then delete them (idempotent)."""
        errors = []
        for ns in reversed(self._created):
            try:
                _kill_namespace_processes(ns)
                _run(["ip", "netns", "del", ns])
            except NetnsError as error:
                errors.append(str(error))
        self._created.clear()
        if errors:
            raise NetnsError("; ".join(errors))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _kill_namespace_processes(ns: str) -> None:
    """SIGTERM, then SIGKILL, the processes inside ``ns`` (only ever our own namespaces)."""
    pids = [int(p) for p in _run(["ip", "netns", "pids", ns]).split()]
    for pid in pids:
        _signal(pid, 15)
    deadline = time.monotonic() + KILL_WAIT_S
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    for pid in pids:
        _signal(pid, 9)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def update_schedule(
    trace: Trace, duration_s: float, offset_s: float = 0.0
) -> list[tuple[float, float]]:
    """(time, rate) changes covering ``duration_s`` of a looping trace, merged to MIN_UPDATE_S steps."""
    steps = max(1, int(np.ceil(duration_s / MIN_UPDATE_S)))
    schedule: list[tuple[float, float]] = []
    for i in range(steps):
        start = i * MIN_UPDATE_S
        end = min(duration_s, start + MIN_UPDATE_S)
        rate = _mean_rate(trace, start + offset_s, end + offset_s)
        if not schedule or abs(schedule[-1][1] - rate) > 1e-9:
            schedule.append((start, rate))
    return schedule


def _mean_rate(trace: Trace, start: float, end: float) -> float:
    """Mean Mbit/s of a looping trace over [start, end), from its cumulative-megabit curve."""
    bounds = np.append(trace.starts_s, trace.duration_s)
    cumulative = np.concatenate([[0.0], np.cumsum(trace.mbps * trace.segment_s)])

    def megabits_until(t: float) -> float:
        loops, pos = divmod(t, trace.duration_s)
        return float(loops * cumulative[-1] + np.interp(pos, bounds, cumulative))

    return (megabits_until(end) - megabits_until(start)) / (end - start)


class TracePlayer:
    """A thread that applies a trace's rate changes to a ``ShapedPair`` on the wall clock."""

    def __init__(
        self, pair: ShapedPair, trace: Trace, duration_s: float, offset_s: float = 0.0
    ) -> None:
        self.pair = pair
        self.schedule = update_schedule(trace, duration_s, offset_s)
        self.duration_s = duration_s
        self.applied = 0
        self.error: BaseException | None = None
        self.started_at = 0.0  # time.monotonic() when the first rate was applied
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="trace-player", daemon=True)

    def start(self) -> TracePlayer:
        self.pair.set_downlink(self.schedule[0][1])
        self.applied = 1
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _play(self) -> None:
        try:
            for at, rate in self.schedule[1:]:  # bounded by the schedule's length
                if self._stop.wait(max(0.0, self.started_at + at - time.monotonic())):
                    return
                self.pair.set_downlink(rate)
                self.applied += 1
        except BaseException as error:  # reported by stop()
            self.error = error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TC_TIMEOUT_S + 1)
        if self.error is not None:
            raise NetnsError(f"trace player failed: {self.error}")


BULK_PORT = 5201
_SENDER = """
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
server = socket.create_server(("0.0.0.0", port))
server.settimeout(10)
conn, _ = server.accept()
payload = b"x" * 65536
end = time.monotonic() + seconds
conn.settimeout(seconds + 5)
try:
    while time.monotonic() < end:
        conn.sendall(payload)
except OSError:
    pass
conn.close()
"""
_RECEIVER = """
import json, socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
for attempt in range(200):  # the sender may start late on a busy machine
    try:
        conn = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
else:
    raise SystemExit("could not connect to the bulk sender")
conn.settimeout(seconds + 5)
samples, total = [], 0
while True:
    data = conn.recv(1 << 20)
    if not data:
        break
    total += len(data)
    samples.append((time.monotonic(), total))  # CLOCK_MONOTONIC: shared by every namespace
print(json.dumps(samples))
"""


def measure_downlink(pair: ShapedPair, seconds: float) -> list[tuple[float, int]]:
    """Bulk TCP transfer server -> viewer for ``seconds``.

    Returns (``time.monotonic()`` of the receiver, bytes received so far) samples; the monotonic
    clock is the same in every namespace, so they line up with ``TracePlayer.started_at``.
    """
    sender = subprocess.Popen(
        [
            *pair.exec_prefix(pair.server_ns),
            sys.executable,
            "-c",
            _SENDER,
            str(BULK_PORT),
            str(seconds),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        received = subprocess.run(
            [
                *pair.exec_prefix(pair.viewer_ns),
                sys.executable,
                "-c",
                _RECEIVER,
                pair.server_ip,
                str(BULK_PORT),
                str(seconds),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 20,
            check=False,
        )
    finally:
        try:
            sender.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sender.kill()
            sender.wait()
    if received.returncode != 0:
        raise NetnsError(f"bulk receiver failed: {received.stderr.strip()}")
    return [(float(t), int(b)) for t, b in json.loads(received.stdout)]


def rate_between(samples: Sequence[tuple[float, int]], start: float, end: float) -> float:
    """Mean received Mbit/s between two monotonic times of a ``measure_downlink`` result."""
    times = np.array([t for t, _ in samples])
    totals = np.array([b for _, b in samples], dtype=np.float64)
    first = np.interp(start, times, totals)
    last = np.interp(end, times, totals)
    return float((last - first) * 8 / (end - start) / 1e6)
