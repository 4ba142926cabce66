"""Run the media server in this process, or in several processes sharing one port."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import resource
import signal
from dataclasses import replace

from server.settings import ServerSettings

# (gen0 allocations, gen0 runs per gen1 run, gen1 runs per gen2 run); CPython's default is (700, 10, 10)
GC_THRESHOLDS = (50_000, 50, 1000)
FILES_RESERVE = 256  # descriptors beside the sockets: media and database files, pipes, the loop
SHUTDOWN_TIMEOUT_S = 60.0  # graceful shutdown waits this long for open requests
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def tune_gc() -> None:
    """Make the cyclic garbage collector's pauses rare in a long-running server process.

    With thousands of viewers the heap holds about a million tracked objects; CPython's
    default thresholds then run full (gen2) collections every few seconds, each pausing
    the event loop for 50-150 ms, which is what set p99 chunk latency (measured with
    scripts/bench_server.py). Larger thresholds keep collections young and rare, and
    freezing what exists at startup keeps it out of every later collection.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


def hide_library_version(name: str) -> None:
    """Responses aiohttp makes on its own (``400 Bad Request`` for bytes that are not HTTP)
    never reach the app's ``on_response_prepare``; they take their ``Server:`` from this module
    global, so in a server process it names no versions either."""
    import aiohttp.web_response

    # web_response reads this global, which it imports from aiohttp.http (not re-exported)
    aiohttp.web_response.SERVER_SOFTWARE = name  # type: ignore[attr-defined]


def open_files_needed(settings: ServerSettings) -> int:
    """Descriptors one server process may need: every viewer's socket, every socket allowed to
    wait for its request headers, and the process's own files."""
    return settings.max_viewers + settings.max_pending + FILES_RESERVE


def raise_open_file_limit(needed: int) -> str | None:
    """Raise the soft open-file limit towards ``needed`` (at most the hard limit); a warning
    naming the numbers when it cannot reach it, else None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target >= needed:
        return None
    return (
        f"the open-file limit is {target} (hard limit {hard}), below the {needed} this server "
        f"may need (--max-viewers + --max-pending + {FILES_RESERVE} for its files): past it, "
        "new connections fail. Raise it (ulimit -Hn, systemd LimitNOFILE=) or lower --max-viewers"
    )


def serve(
    settings: ServerSettings, host: str, port: int, *, reuse_port: bool, access_log: bool
) -> None:
    """Run one server process until SIGINT/SIGTERM (graceful shutdown tells the viewers)."""
    from server.app import SERVER_HEADER

    hide_library_version(SERVER_HEADER)
    logger = logging.getLogger("server")
    warning = raise_open_file_limit(open_files_needed(settings))
    if warning is not None:
        logger.warning(warning)
    asyncio.run(_serve(settings, host, port, reuse_port=reuse_port, access_log=access_log))


async def _serve(
    settings: ServerSettings, host: str, port: int, *, reuse_port: bool, access_log: bool
) -> None:
    from aiohttp import web
    from aiohttp.web_log import AccessLogger

    from server.app import create_app
    from server.connections import GuardedSite
    from server.keys import connections_key

    loop = asyncio.get_running_loop()
    app = create_app(settings)
    guard = app[connections_key]
    loop.set_exception_handler(guard.handle_loop_exception)
    stop = asyncio.Event()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = GuardedSite(
            runner,
            host,
            port,
            guard=guard,
            reuse_port=reuse_port,
            handler_options={
                # aiohttp closes a socket whose request headers are not complete this long
                # after the accept or the last response (its keep-alive timeout)
                "keepalive_timeout": settings.header_timeout_s,
                "access_log_class": AccessLogger,
                "access_log": logging.getLogger("aiohttp.access") if access_log else None,
            },
        )
        await site.start()
        tune_gc()
        logging.getLogger("server").info("======== Running on %s ========", site.name)
        await stop.wait()
    finally:
        await runner.cleanup()


def serve_workers(
    settings: ServerSettings, host: str, port: int, count: int, *, access_log: bool
) -> int:
    """Run ``count`` server processes sharing ``port`` (SO_REUSEPORT); the worst exit status."""
    workers = [
        multiprocessing.Process(
            target=serve,
            args=(replace(settings, server_id=str(i)), host, port),
            kwargs={"reuse_port": True, "access_log": access_log},
            name=f"promptus-serve-{i}",
        )
        for i in range(count)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.join()
    return max((worker.exitcode or 0) for worker in workers)
