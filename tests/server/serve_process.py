"""``promptus serve`` as a real child process on a loopback port (started, waited for, stopped
by PID)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.ports import free_port
from common.processes import Child
from tests.web.stack import START_TIMEOUT_S, promptus_child


@contextmanager
def running_server(media: Path, *args: str) -> Iterator[tuple[Child, int]]:
    """A ``promptus serve`` child answering /healthz; stopped (SIGTERM, then SIGKILL) at exit."""
    port = free_port()
    child = promptus_child("serve", ["serve", "--media", str(media), "--port", str(port), *args])
    try:
        child.wait_for_http(f"http://127.0.0.1:{port}/healthz", START_TIMEOUT_S)
        yield child, port
    finally:
        child.stop()
