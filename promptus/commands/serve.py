"""`promptus serve`: run the media server over a folder of ladders (one channel per ladder)."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from promptus.errors import CommandError

if TYPE_CHECKING:
    pass

DEFAULT_PORT = 8080


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--media",
        type=Path,
        required=True,
        help="folder of ladder directories; each one is a channel named after its directory",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port")
    parser.add_argument(
        "--telemetry",
        default=None,
        metavar="PATH|DSN|off",
        help="SQLite file, postgresql:// DSN, or 'off' (default: MEDIA/telemetry.sqlite3)",
    )
    parser.add_argument(
        "--web", type=Path, default=None, help="web player folder (default: the repo's web/)"
    )
    parser.add_argument("--max-viewers", type=int, default=10_000, help="viewers per process")
    parser.add_argument("--rate", type=float, default=20.0, help="messages/s a viewer may sustain")
    parser.add_argument(
        "--idle-timeout", type=float, default=60.0, help="seconds before a silent viewer is closed"
    )
    parser.add_argument("--cache-mb", type=int, default=256, help="chunk cache size in MiB")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port through SO_REUSEPORT",
    )
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")


def run(args: argparse.Namespace) -> int:
    from server.run import serve, serve_workers
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
    return serve_workers(settings, args.host, args.port, args.workers, access_log=args.access_log)
