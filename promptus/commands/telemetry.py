"""``promptus telemetry report|prune``: Puffer-style statistics of the real sessions in a
media server's telemetry database, and its retention policy run once by hand."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from promptus.errors import CommandError

if TYPE_CHECKING:
    from server.telemetry_db import Backend

DEFAULT_OUT = Path("runs/telemetry-report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report",
        formatter_class=parser.formatter_class,
        help="per ABR: stall ratio, mean quality, variation, startup, with intervals and a plot",
        description="Puffer-style report of the sessions in a telemetry database (the metric "
        "code of promptus emulate); writes summary.csv/json, sessions.csv and a plot",
    )
    _database_arguments(report)
    report.add_argument(
        "--days", type=float, default=None, help="only sessions of the last DAYS (default: all)"
    )
    report.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    prune = actions.add_parser(
        "prune",
        formatter_class=parser.formatter_class,
        help="delete rows past the retention window and the oldest ones over the size cap",
        description="Enforce the retention policy once (a running server does it every minute)",
    )
    _database_arguments(prune)
    from server.settings import DAY_S, ServerSettings

    defaults = ServerSettings(media_dir=Path("."))
    prune.add_argument(
        "--days",
        type=float,
        default=defaults.telemetry_retention_s / DAY_S,
        help="keep this many days",
    )
    prune.add_argument(
        "--max-mb",
        type=float,
        default=defaults.telemetry_max_bytes / 1e6,
        help="size cap of the data in MB",
    )


def _database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--telemetry",
        metavar="PATH|DSN",
        help="SQLite file or postgresql:// DSN (default: MEDIA/telemetry.sqlite3)",
    )
    parser.add_argument(
        "--media",
        type=Path,
        help="the server's media folder: channel qualities come from its manifests "
        "(default: none: quality and bitrate unknown)",
    )


def _target(args: argparse.Namespace) -> str:
    from server.settings import TELEMETRY_FILE_NAME

    if args.telemetry:
        if not args.telemetry.startswith(("postgres://", "postgresql://")):
            if not Path(args.telemetry).is_file():
                raise CommandError(f"--telemetry {args.telemetry}: no such database file")
        return str(args.telemetry)
    if args.media is None:
        raise CommandError("give --telemetry PATH|DSN or --media DIR (MEDIA/telemetry.sqlite3)")
    path = args.media / TELEMETRY_FILE_NAME
    if not path.is_file():
        raise CommandError(f"{path}: no telemetry database (give --telemetry)")
    return str(path)


def run(args: argparse.Namespace) -> int:
    target = _target(args)
    try:
        if args.action == "prune":
            return asyncio.run(_prune(target, args))
        return asyncio.run(_report(target, args))
    except OSError as error:
        raise CommandError(f"telemetry database {target}: {error}") from None


async def _open(target: str, max_bytes: int = 0) -> Backend:
    from server.telemetry_db import open_backend

    backend = open_backend(target, max_bytes=max_bytes)
    assert backend is not None
    try:
        await backend.open()
    except Exception as error:  # noqa: BLE001 - any driver error: one line for the user
        raise CommandError(f"cannot open the telemetry database {target}: {error}") from None
    return backend


async def _prune(target: str, args: argparse.Namespace) -> int:
    from server.retention import Retention, enforce
    from server.settings import DAY_S

    try:
        retention = Retention(max_age_s=args.days * DAY_S, max_bytes=int(args.max_mb * 1e6))
    except ValueError as error:
        raise CommandError(str(error)) from None
    backend = await _open(target, retention.max_bytes)
    try:
        result = await enforce(backend, retention)
    finally:
        await backend.close()
    print(
        f"deleted {result.deleted} rows older than {args.days:g} days or over "
        f"{args.max_mb:g} MB; the data now take {result.size_bytes / 1e6:.2f} MB"
    )
    return 0


async def _report(target: str, args: argparse.Namespace) -> int:
    from common.atomic import atomic_write_json
    from emulation.report import headline_table, plot_stall_vs_quality, write_csv
    from emulation.telemetry_report import channel_facts, load_sessions, summarise
    from server.settings import DAY_S

    since = time.time() - args.days * DAY_S if args.days is not None else 0.0
    backend = await _open(target)
    try:
        logs = await load_sessions(backend, since)
    finally:
        await backend.close()
    if not logs:
        raise CommandError(f"{target}: no sessions to report on")
    facts = channel_facts(args.media, {log.session["channel"] for log in logs})
    streams, summaries, metric = summarise(logs, facts)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "summary.csv", [s.to_row() for s in summaries])
    atomic_write_json(args.out / "summary.json", [s.to_row() for s in summaries])
    write_csv(args.out / "sessions.csv", [s.to_row() for s in streams])
    plot_stall_vs_quality(summaries, metric, args.out / "stall_vs_quality.png")
    valid = sum(s.valid for s in streams)
    print(
        f"{len(streams)} sessions ({valid} watched at least 4 s) from {target}; quality: "
        f"{'SSIM dB' if metric == 'ssim_db' else 'PSNR dB'}"
        + ("" if facts else " (no --media: quality and bitrate unknown)")
    )
    print(headline_table(summaries))
    print(f"tables and stall_vs_quality.png in {args.out}")
    return 0
