"""`promptus serve`: run the media server over a folder of ladders (one channel per ladder)."""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from promptus.cli import CommandError

if TYPE_CHECKING:
    from server.settings import ServerSettings

DEFAULT_PORT = 8080
# (gen0 allocations, gen0 runs per gen1 run, gen1 runs per gen2 run); CPython's default is (700, 10, 10)
GC_THRESHOLDS = (50_000, 50, 1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--media",
        type=Path,
        required=True,
        help="folder of ladder directories; each one is a channel named after its directory",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--telemetry",
        default=None,
        metavar="PATH|DSN|off",
        help="SQLite file, postgresql:// DSN, or 'off' (default: MEDIA/telemetry.sqlite3)",
    )
    parser.add_argument(
        "--web", type=Path, default=None, help="web player folder (default: the repo's web/)"
    )
    parser.add_argument(
        "--max-viewers", type=int, default=10_000, help="viewers per process (default 10000)"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="messages/s a viewer may sustain (default 20)"
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=60.0, help="seconds before a silent viewer is closed"
    )
    parser.add_argument(
        "--cache-mb", type=int, default=256, help="chunk cache size in MiB (default 256)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port through SO_REUSEPORT (default 1)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")


def run(args: argparse.Namespace) -> int:
    from server.settings import TELEMETRY_FILE_NAME, ServerSettings

    media = args.media.resolve()
    if not media.is_dir():
        raise CommandError(f"--media {args.media}: not a directory")
    if (
        args.workers < 1
        or args.max_viewers < 1
        or args.rate <= 0
        or args.idle_timeout <= 0
        or args.cache_mb < 0
    ):
        raise CommandError(
            "--workers, --max-viewers, --rate, --idle-timeout must be positive, --cache-mb >= 0"
        )
    telemetry = args.telemetry
    if telemetry is None:
        if not os.access(media, os.W_OK):
            raise CommandError(
                f"{media} is not writable for telemetry.sqlite3; pass --telemetry PATH or off"
            )
        telemetry = str(media / TELEMETRY_FILE_NAME)
    elif telemetry == "off":
        telemetry = None
    settings = ServerSettings(
        media_dir=media,
        telemetry=telemetry,
        max_viewers=args.max_viewers,
        rate_per_s=args.rate,
        rate_burst=max(1, int(2 * args.rate)),
        idle_timeout_s=args.idle_timeout,
        cache_bytes=args.cache_mb * 1024 * 1024,
    )
    if args.web is not None:
        settings = replace(settings, web_dir=args.web.resolve())
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    if args.workers == 1:
        serve(settings, args.host, args.port, reuse_port=False, access_log=args.access_log)
        return 0
    return _run_workers(settings, args)


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


def serve(
    settings: ServerSettings, host: str, port: int, *, reuse_port: bool, access_log: bool
) -> None:
    """Run one server process until SIGINT/SIGTERM (graceful shutdown tells the viewers)."""
    from aiohttp import web

    from server.app import create_app

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


def _run_workers(settings: ServerSettings, args: argparse.Namespace) -> int:
    workers = [
        multiprocessing.Process(
            target=serve,
            args=(replace(settings, server_id=str(i)), args.host, args.port),
            kwargs={"reuse_port": True, "access_log": args.access_log},
            name=f"promptus-serve-{i}",
        )
        for i in range(args.workers)
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
