"""``promptus live``: a live feed becomes a live prompt ladder (a channel ``promptus serve`` serves).

Prints one line per published chunk and level with its live latency (capture of the chunk's
first frame to publication), and a summary per level at the end (Ctrl-C or SIGTERM ends
the channel: the ladder is finished with what was published).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptus.errors import CommandError
from promptus.options import add_levels_option, levels_from_args

if TYPE_CHECKING:
    from authoring.live.channel import LiveSummary
    from authoring.live.publisher import Publication

DEFAULT_WINDOW_MINUTES = 10.0
DEFAULT_MAX_LATENCY_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from promptus.fitting import add_cluster_arguments, add_schedule_arguments
    from promptus.options import add_generator_options

    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="the feed: a video file or folder of frames (paced at its frame rate), "
        "rtmp://HOST:PORT/APP/KEY (listens for a publisher), udp://HOST:PORT (MPEG-TS), or any "
        "URL FFmpeg reads (no srt:// in PyAV's FFmpeg)",
    )
    parser.add_argument("--channel", required=True, help="channel name (its ladder directory)")
    parser.add_argument("--media", required=True, type=Path, help="the media folder to publish in")
    add_levels_option(parser)
    parser.add_argument(
        "--window-minutes",
        type=float,
        default=DEFAULT_WINDOW_MINUTES,
        help="DVR window: keep the last M minutes (0: keep everything)",
    )
    parser.add_argument(
        "--max-latency",
        type=float,
        default=DEFAULT_MAX_LATENCY_S,
        metavar="SECONDS",
        help="a segment of a level not fitted this long after its frames arrived is published "
        "as a gap",
    )
    parser.add_argument(
        "--open-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for a publisher or the first data",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="end the channel after N frames (default: when the feed ends)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="at the end, write every publication (chunk, level, latencies, PSNR) and the "
        "settings as JSON (default: none)",
    )
    parser.add_argument(
        "--pace",
        choices=("auto", "yes", "no"),
        default="auto",
        help="deliver a file's or folder's frames at their frame rate (auto: files and folders "
        "yes, network feeds no)",
    )
    add_schedule_arguments(parser)
    add_cluster_arguments(
        parser,
        default="local",
        segments_help="closed segments of about this length, one task per segment and level "
        "(default: one chunk)",
    )
    add_generator_options(parser)


def run(args: argparse.Namespace) -> int:
    from authoring.cluster import open_runner
    from authoring.jobs import check_size
    from authoring.levels import chunk_frames_for
    from authoring.live.channel import LiveChannel, LiveSettings
    from authoring.live.feed import Feed, FeedOptions
    from authoring.live.publisher import window_chunks_for
    from authoring.runner import TaskResources
    from authoring.segment_batch import resolve_segments_per_step
    from authoring.segments import segment_chunks_for
    from authoring.tasks import GeneratorSpec
    from engines.variants import VARIANTS
    from promptus.fitting import schedule
    from promptus.options import check_weights_given
    from wire.media import CHANNEL_PATTERN

    levels = levels_from_args(args)
    if CHANNEL_PATTERN.fullmatch(args.channel) is None:
        raise CommandError(f"--channel {args.channel!r}: letters, digits, '.', '_', '-' (<= 64)")
    for flag, value in (("--max-latency", args.max_latency), ("--open-timeout", args.open_timeout)):
        if value <= 0:
            raise CommandError(f"{flag} must be positive, got {value}")
    options = schedule(args).fit_options()
    check_weights_given(args)
    size = args.size if args.size is not None else VARIANTS[args.generator].native_size[0]
    check_size(size)
    pace = {"auto": None, "yes": True, "no": False}[args.pace]
    print(f"live {args.channel}: opening {args.source}", flush=True)  # rtmp: listening from now
    feed = Feed(
        args.source,
        FeedOptions(size=size, fps=args.fps, pace=pace, open_timeout_s=args.open_timeout,
                    max_frames=args.max_frames),
        note=lambda text: print(f"live {args.channel}: {text}", flush=True),
    )  # fmt: skip
    with feed:
        chunk_frames = chunk_frames_for(levels, feed.fps, args.chunk_seconds)
        chunk_seconds = chunk_frames / feed.fps
        segment_seconds = args.segment_seconds or chunk_seconds
        settings = LiveSettings(
            channel=args.channel, media=args.media, levels=tuple(levels), options=options,
            chunk_frames=chunk_frames,
            segment_chunks=segment_chunks_for(segment_seconds, feed.fps, chunk_frames),
            window_chunks=window_chunks_for(args.window_minutes, chunk_seconds),
            max_latency_s=args.max_latency, measure_quality=not args.no_quality,
        )  # fmt: skip
        print(
            f"live {args.channel}: {feed.description} at {feed.fps:g} fps -> {size}x{size}, "
            f"chunks of {chunk_frames} frames, {settings.segment_chunks} chunk(s) per segment, "
            f"levels {', '.join(lv.name for lv in levels)}",
            flush=True,
        )
        runner = open_runner(args.cluster, local_cpus=args.local_cpus)
        print(f"tasks run on {runner.description}", flush=True)
        try:
            on_gpu = runner.gpus > 0 and args.device != "cpu"
            resources = TaskResources(gpus=1) if on_gpu else TaskResources(cpus=args.threads or 1)
            stacked = resolve_segments_per_step(args.segments_per_step, on_gpu)
            settings = replace(settings, segments_per_step=stacked)
            channel = LiveChannel(
                settings, runner=runner, loader=GeneratorSpec(args.generator, args.weights,
                args.taesd), resources=resources, fps=feed.fps, size=size,
                report=print_publication, note=lambda text: print(text, flush=True),
            )  # fmt: skip
            signal.signal(signal.SIGTERM, _interrupt)  # a service stop finishes the ladder too
            summary = channel.run(iter(feed))
        finally:
            runner.close()
    print_summary(summary)
    if args.json is not None:
        write_report(args.json, vars(args), feed.description, summary)
    return 0


def write_report(path: Path, arguments: dict[str, Any], feed: str, summary: LiveSummary) -> None:
    """The run's raw rows: one per publication, with the command's arguments and the machine."""
    import dataclasses
    import json
    import os
    import platform

    report = {
        "command": "promptus live " + " ".join(sys.argv[2:]),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "feed": feed,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in arguments.items()},
        "gaps": summary.gaps,
        "retries": summary.retries,
        "degraded": summary.degraded,
        "publications": [dataclasses.asdict(p) for p in summary.publications],
    }
    path.write_text(json.dumps(report, indent=1) + "\n")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def print_publication(publication: Publication) -> None:
    what = "gap" if publication.gap else "chunk"
    psnr = f", PSNR {publication.psnr:.2f} dB" if publication.psnr is not None else ""
    print(
        f"{what} {publication.chunk} {publication.level}: live latency "
        f"{publication.latency_s:.2f} s (fit done {publication.wait_s:.2f} s after its last "
        f"frame){psnr}",
        flush=True,
    )


def print_summary(summary: LiveSummary) -> None:
    by_level: dict[str, list[float]] = {}
    for publication in summary.publications:
        if not publication.gap:
            by_level.setdefault(publication.level, []).append(publication.latency_s)
    for level, latencies in by_level.items():
        print(
            f"{level}: {len(latencies)} chunks, live latency median "
            f"{statistics.median(latencies):.2f} s, max {max(latencies):.2f} s"
        )
    print(f"gaps {summary.gaps}, retried tasks {summary.retries}")
    if summary.manifest is not None:
        manifest = summary.manifest
        print(
            f"finished: chunks {manifest.window_start}..{manifest.chunk_count - 1} in the window",
            file=sys.stdout,
        )
