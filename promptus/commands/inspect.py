"""`promptus inspect PATH [--json]`: keyframes, rank, interval, raw and coded bytes, kbps."""

from __future__ import annotations

import argparse
import json

from promptus.errors import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a ladder directory, a level directory or one .chunk file")
    parser.add_argument(
        "--level",
        default=None,
        help="level (id or name) for the summary keys (default: the highest level)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from prompts.inspect import inspect_path

    try:
        reports, manifest = inspect_path(args.path)
    except (ValueError, OSError) as error:
        raise CommandError(str(error).splitlines()[0]) from None
    if not reports:
        raise CommandError(f"{args.path}: the ladder has no chunks yet")
    chosen = reports[-1]
    if args.level is not None:
        matches = [r for i, r in enumerate(reports) if args.level in (r.name, str(i))]
        if not matches:
            raise CommandError(f"no level {args.level!r}; levels are {[r.name for r in reports]}")
        chosen = matches[0]
    if args.json:
        document = chosen.to_json()
        document["levels"] = [r.to_json() for r in reports]
        if manifest is not None:
            document["fps"] = manifest.stream.fps
            document["generator"] = {
                "id": manifest.stream.generator_id,
                "name": manifest.stream.generator_name,
            }
        print(json.dumps(document, indent=2))
        return 0
    if manifest is not None:
        s = manifest.stream
        print(
            f"{args.path}: {s.width}x{s.height} @ {s.fps:g} fps, {s.frames} frames, "
            f"chunks of {s.chunk_frames} frames, generator {s.generator_name} ({s.generator_id}), "
            f"rule {s.prev_latent_rule}{', live' if s.live else ''}"
        )
    print(
        f"{'level':>10} {'rank':>5} {'interval':>8} {'chunks':>6} {'keyframes':>9} "
        f"{'raw bytes':>10} {'coded bytes':>11} {'ratio':>6} {'kbps':>8}"
    )
    for r in reports:
        kbps = f"{r.kbps:8.1f}" if r.kbps is not None else f"{'-':>8}"
        print(
            f"{r.name:>10} {r.rank:>5} {r.interval:>8} {r.chunks:>6} {r.keyframes:>9} "
            f"{r.raw_bytes:>10} {r.coded_bytes:>11} {r.ratio:>6.3f} {kbps}"
        )
    return 0
