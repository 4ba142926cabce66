"""Run a daemon until cancelled and announce it: a line on stdout and, when asked, a ready file."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from client_daemon.daemon import Daemon
from client_daemon.ready import DaemonReady, write_ready_file

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def announce(daemon: Daemon) -> DaemonReady:
    """The announcement of a started daemon."""
    return DaemonReady(
        url=daemon.url,
        port=daemon.port,
        generator_id=daemon.generator_id,
        generator_name=daemon.generator.name,
        device=daemon.device_name,
        allowed_origins=tuple(daemon.settings.allowed_origins),
        pid=os.getpid(),
    )


async def serve_announced(daemon: Daemon, ready_file: Path | None = None) -> None:
    """Start ``daemon``, announce it, serve until SIGTERM/SIGINT, then withdraw the ready file."""
    async with daemon:
        ready = announce(daemon)
        if ready_file is not None:
            write_ready_file(ready_file, ready)
        print(
            f"promptus daemon: {ready.url} generator {ready.generator_id} on {ready.device}; "
            f"pages allowed from {', '.join(ready.allowed_origins)}",
            flush=True,
        )
        try:
            await _serve_until_signalled(daemon)
        finally:
            if ready_file is not None:
                Path(ready_file).unlink(missing_ok=True)


async def _serve_until_signalled(daemon: Daemon) -> None:
    """Serve until SIGTERM or SIGINT (or cancellation), then return normally."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, task.cancel)
    try:
        await daemon.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
