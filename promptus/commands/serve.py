"""`promptus serve`: run the media server over a folder of ladders (one channel per ladder)."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace
from pathlib import Path

from promptus.errors import CommandError

DEFAULT_PORT = 8080
LADDER_SEARCH_DEPTH = 4  # folders below --media looked into when no ladder is directly in it
LADDERS_NAMED = 3  # ladders found below that the warning names


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
    add_limit_arguments(parser)


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Per-address limits and the telemetry bounds (docs/server.md, "Limits and bad input")."""
    from server.settings import DAY_S, ServerSettings

    defaults = ServerSettings(media_dir=Path("."))
    group = parser.add_argument_group("limits")
    group.add_argument(
        "--max-per-address",
        type=int,
        default=defaults.max_per_address,
        help="WebSockets one client address may hold (IPv6: one /64); 0 = no limit, e.g. "
        "behind a proxy that limits per address",
    )
    group.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout_s,
        metavar="S",
        help="close a socket whose request headers are not complete this long after it was "
        "accepted or answered (half-sent requests, idle keep-alive)",
    )
    group.add_argument(
        "--max-pending-per-address",
        type=int,
        default=defaults.max_pending_per_address,
        help="sockets one client address may have waiting for their request headers; more are "
        "closed at once; 0 = no limit",
    )
    group.add_argument(
        "--max-pending",
        type=int,
        default=defaults.max_pending,
        help="sockets waiting for their request headers in all; more are closed at once",
    )
    group.add_argument(
        "--manifest-mb-per-s",
        type=float,
        default=defaults.manifest_bytes_per_s / 2**20,
        help="MiB of manifests per second the hellos of one address may cost, bursts of two "
        "largest manifests",
    )
    group.add_argument(
        "--telemetry-rows-per-min",
        type=int,
        default=defaults.telemetry_rows_per_min,
        help="telemetry rows one connection may add per minute; more are counted, not written",
    )
    group.add_argument(
        "--telemetry-days",
        type=float,
        default=defaults.telemetry_retention_s / DAY_S,
        help="telemetry rows older than this are deleted",
    )
    group.add_argument(
        "--telemetry-max-mb",
        type=float,
        default=defaults.telemetry_max_bytes / 1e6,
        help="size cap of the telemetry data; the oldest rows go above it",
    )
    group.add_argument(
        "--telemetry-prune-every",
        type=float,
        default=defaults.telemetry_prune_s,
        metavar="S",
        help="seconds between retention runs",
    )


def run(args: argparse.Namespace) -> int:
    from server.run import serve, serve_workers
    from server.settings import DAY_S, TELEMETRY_FILE_NAME, ServerSettings

    media = args.media.resolve()
    if not media.is_dir():
        raise CommandError(f"--media {args.media}: not a directory")
    if (
        args.workers < 1
        or args.max_viewers < 1
        or args.rate <= 0
        or args.idle_timeout <= 0
        or args.cache_mb < 0
        or args.max_per_address < 0
        or args.header_timeout <= 0
        or args.max_pending_per_address < 0
        or args.max_pending < 1
        or args.manifest_mb_per_s <= 0
        or args.telemetry_rows_per_min < 1
        or args.telemetry_days <= 0
        or args.telemetry_max_mb <= 0
        or args.telemetry_prune_every <= 0
    ):
        raise CommandError(
            "--workers, --max-viewers, --rate, --idle-timeout, --header-timeout, --max-pending, "
            "--manifest-mb-per-s and the --telemetry-* limits must be positive, --cache-mb, "
            "--max-per-address and --max-pending-per-address >= 0"
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
        max_per_address=args.max_per_address,
        header_timeout_s=args.header_timeout,
        max_pending_per_address=args.max_pending_per_address,
        max_pending=args.max_pending,
        manifest_bytes_per_s=args.manifest_mb_per_s * 2**20,
        telemetry_rows_per_min=args.telemetry_rows_per_min,
        telemetry_retention_s=args.telemetry_days * DAY_S,
        telemetry_max_bytes=int(args.telemetry_max_mb * 1e6),
        telemetry_prune_s=args.telemetry_prune_every,
    )
    if args.web is not None:
        settings = replace(settings, web_dir=args.web.resolve())
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    note = missing_ladders_note(media)
    if note is not None:
        logging.getLogger("promptus.serve").warning(note)
    if args.workers == 1:
        serve(settings, args.host, args.port, reuse_port=False, access_log=args.access_log)
        return 0
    return serve_workers(settings, args.host, args.port, args.workers, access_log=args.access_log)


def missing_ladders_note(media: Path) -> str | None:
    """None when a ladder (``NAME/manifest.json``) is directly in ``media``; else a warning that
    names the ladders found further down (``--media`` one folder too high is the usual slip)."""
    from prompts.ladder import MANIFEST_NAME

    if any(media.glob(f"*/{MANIFEST_NAME}")):
        return None
    below: list[Path] = []
    for depth in range(2, LADDER_SEARCH_DEPTH + 1):
        below += sorted(path.parent for path in media.glob("*/" * depth + MANIFEST_NAME))
    head = (
        f"no ladder in {media}: a channel is a ladder folder (NAME/{MANIFEST_NAME}, written by "
        "promptus ladder or promptus live) directly inside --media"
    )
    if not below:
        return f"{head}, and none is below it either; serving no channel until one appears"
    named = ", ".join(str(path) for path in below[:LADDERS_NAMED])
    more = f" and {len(below) - LADDERS_NAMED} more" if len(below) > LADDERS_NAMED else ""
    return (
        f"{head}. Ladders below it: {named}{more}; to serve them: "
        f"promptus serve --media {below[0].parent}"
    )
