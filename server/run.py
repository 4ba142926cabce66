"""Run the media server in this process, or in several processes sharing one port."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
from dataclasses import replace

from server.settings import ServerSettings

# (gen0 allocations, gen0 runs per gen1 run, gen1 runs per gen2 run); CPython's default is (700, 10, 10)
GC_THRESHOLDS = (50_000, 50, 1000)


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

    aiohttp.web_response.SERVER_SOFTWARE = name


def serve(
    settings: ServerSettings, host: str, port: int, *, reuse_port: bool, access_log: bool
) -> None:
    """Run one server process until SIGINT/SIGTERM (graceful shutdown tells the viewers)."""
    from aiohttp import web

    from server.app import SERVER_HEADER, create_app

    hide_library_version(SERVER_HEADER)
    app = create_app(settings)

    async def freeze_startup_objects(app: web.Application) -> None:
        tune_gc()

    app.on_startup.append(freeze_startup_objects)
    web.run_app(
        app,
        host=host,
        port=port,
        reuse_port=reuse_port,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        print=lambda text: logging.getLogger("server").info(text.strip()),
    )


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
