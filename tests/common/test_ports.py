"""common.ports: whether a port is free and which process holds it (from /proc)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.ports import free_port, port_free, port_holder

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_port_this_process_listens_on_is_taken_and_named() -> None:
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        holder = port_holder(port)
        assert holder is not None and holder.pid == os.getpid()
        assert sys.executable in holder.command or "python" in holder.command
    assert port_free("127.0.0.1", port) and port_holder(port) is None


def test_a_child_holding_a_port_is_named_with_the_process_that_started_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import socket, time; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('0.0.0.0', {port})); s.listen(); print('up', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        assert not port_free("127.0.0.1", port)  # a listener on every address takes loopback too
        holder = port_holder(port)
        assert holder is not None and holder.pid == child.pid
        assert holder.parent_pid == os.getpid() and " -c import socket, time;" in holder.command
        assert holder.describe().startswith(f"pid {child.pid} (")
        assert f"started by pid {os.getpid()} (" in holder.describe()
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while port_holder(port) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert port_holder(port) is None


def test_free_port_is_free() -> None:
    port = free_port()
    assert 0 < port < 65536 and port_free("127.0.0.1", port)
