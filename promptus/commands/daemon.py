"""``promptus daemon``: run the local generation daemon (prompt chunks -> fMP4 segments)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from pathlib import Path

from client_daemon.settings import (
    CALL_MEMORY_SHARE,
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_PORT,
    IDLE_TIMEOUT_S,
    Budget,
    DaemonSettings,
)
from engines.variants import DEFAULT_MAX_BATCH
from promptus.errors import CommandError
from promptus.options import add_generator_options, load_generator_from_args

DEFAULT_WARM_UP = "512x512@10"  # SD-Turbo's native size, one keyframe interval of 10 frames
WARM_UP_FORM = re.compile(r"(\d+)x(\d+)@(\d+)")


def parse_warm_up(text: str) -> tuple[int, int, int]:
    """``512x512@10`` -> (width, height, frames)."""
    match = WARM_UP_FORM.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not WIDTHxHEIGHT@FRAMES, e.g. {DEFAULT_WARM_UP}"
        )
    width, height, frames = map(int, match.groups())
    return width, height, frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``promptus daemon``."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    add_generator_options(parser, backend=True)
    parser.add_argument(
        "--warm-up",
        action="append",
        dest="warm_ups",
        type=parse_warm_up,
        metavar="WxH@FRAMES",
        help="before listening, generate one group of FRAMES frames at WxH so a backend that "
        "compiles per shape does it now (repeatable) (default: "
        f"{DEFAULT_WARM_UP} for such a backend, none otherwise)",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay captured CUDA graphs (CUDA only; faster generation at fixed batch shapes)",
    )
    parser.add_argument(
        "--compile-mode",
        metavar="MODE",
        help="torch.compile mode, e.g. default (CUDA; the first chunks wait about a minute) "
        "(default: the backend's own choice)",
    )
    parser.add_argument(
        "--ahead-of-time",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fast backend: load the compiled generation step from the compile cache, built there "
        "on the first start (per generator, card and torch version), so a restart is ready in "
        "seconds; each package is first loaded by a throwaway process, and a bad, foreign or "
        "crashing one is logged, recorded and replaced by torch.compile. Off by default: torch "
        "2.11's loader crashed on an H100 (docs/realtime.md)",
    )
    parser.add_argument(
        "--precompiled",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fast backend: save the compiled generation step (torch.compile's ahead-of-time "
        "artifact, without the weights) in the compile cache on the first start and load it on "
        "the next, so a restart skips tracing and compiling; it is checked against the eager "
        "step, and one that fails to load, disagrees or crashed a process is recorded and "
        "replaced by torch.compile. Off by default: on torch 2.11 a fresh process refuses the "
        "saved step on a guard (docs/realtime.md)",
    )
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="compile cache folder (default: $PROMPTUS_COMPILE_CACHE, else ~/.cache/promptus/inductor)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        dest="allow_origins",
        metavar="ORIGIN",
        help="page origin allowed to connect, e.g. http://127.0.0.1:8080 (repeatable) (default: "
        + " and ".join(DEFAULT_ALLOWED_ORIGINS)
        + ")",
    )
    parser.add_argument(
        "--crf", type=int, help="x264 constant rate factor (default: near-lossless)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT_S,
        metavar="S",
        help="close a page that sent nothing this long while none of its chunks was queued "
        "(its stream's slot is freed; a player reconnects and opens again)",
    )
    add_budget_arguments(parser)
    parser.add_argument(
        "--ready-file",
        type=Path,
        metavar="PATH",
        help="once listening, write a JSON announcement here (url, port, generator id, device); "
        "removed on exit (default: none)",
    )


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """What pages may make the daemon allocate (docs/daemon.md, "Budget")."""
    group = parser.add_argument_group("budget (checked before anything is allocated)")
    group.add_argument(
        "--max-chunk-frames",
        type=int,
        default=Budget.max_chunk_frames,
        help="frames per chunk a stream may have",
    )
    group.add_argument(
        "--max-group-frames",
        type=int,
        default=Budget.max_group_frames,
        help="frames between consecutive keyframes, one generation group",
    )
    group.add_argument(
        "--max-chunk-megapixels",
        type=float,
        default=Budget.max_chunk_pixels / 1e6,
        help="largest chunk a stream may ask for: frames x width x height, in millions of "
        "pixels (240 frames of 512x512 = 62.9)",
    )
    group.add_argument(
        "--max-call-mb",
        type=float,
        default=None,
        metavar="MB",
        help="memory one model call may allocate (frames x pixels x the generator's bytes per "
        "pixel, measured at start); a stream whose one frame needs more is refused at open "
        "(default: "
        + " and ".join(
            f"{share * 100:.0f}%% of the free memory on {kind}"
            for kind, share in CALL_MEMORY_SHARE.items()
        )
        + ")",
    )
    group.add_argument(
        "--slice-ms",
        type=float,
        default=Budget.slice_ms,
        metavar="MS",
        help="a page's turn on the generator: model calls of about this long (at least one "
        "frame), so other pages wait about this long for theirs",
    )
    group.add_argument(
        "--max-sessions",
        type=int,
        default=Budget.max_sessions,
        help="streams generated at once; more pages get 'busy'",
    )
    group.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help="frames per UNet call at most; longer groups run in slices (of fewer frames when "
        "--max-call-mb or --slice-ms say so)",
    )


def budget_from_args(args: argparse.Namespace) -> Budget:
    """The Budget the options give (CommandError when one is below 1)."""
    try:
        return Budget(
            max_chunk_frames=args.max_chunk_frames,
            max_group_frames=args.max_group_frames,
            max_chunk_pixels=round(args.max_chunk_megapixels * 1e6),
            max_sessions=args.max_sessions,
            max_call_bytes=None if args.max_call_mb is None else round(args.max_call_mb * 2**20),
            slice_ms=args.slice_ms,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    """Load the generator and serve pages until interrupted."""
    from client_daemon.daemon import ENGINE_FRAME_FORMAT, Daemon
    from client_daemon.muxer import NEAR_LOSSLESS, EncoderSettings
    from client_daemon.run import serve_announced

    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is not a TCP port")
    if args.crf is not None and not 0 <= args.crf <= 51:
        raise CommandError(f"--crf {args.crf} outside 0..51")
    origins = tuple(args.allow_origins or DEFAULT_ALLOWED_ORIGINS)
    for origin in origins:
        if "://" not in origin or origin.endswith("/"):
            raise CommandError(f"--allow-origin {origin!r} is not an origin like http://host:port")
    encoder = NEAR_LOSSLESS if args.crf is None else EncoderSettings(crf=args.crf)
    if args.max_batch < 1:
        raise CommandError(f"--max-batch must be at least 1, got {args.max_batch}")
    budget = budget_from_args(args)
    try:
        settings = DaemonSettings(
            host=args.host,
            port=args.port,
            allowed_origins=origins,
            encoder=encoder,
            budget=budget,
            idle_timeout_s=args.idle_timeout,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    generator = load_generator_from_args(
        args,
        backend=args.backend,
        cuda_graph=args.cuda_graph,
        compile_mode=args.compile_mode,
        compile_cache_dir=args.compile_cache,
        ahead_of_time=args.ahead_of_time,
        precompiled=args.precompiled,
        max_batch=args.max_batch,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    warm_ups = args.warm_ups
    if warm_ups is None:
        warm_ups = [parse_warm_up(DEFAULT_WARM_UP)] if generator.backend.specialises_shapes else []
    for width, height, frames in warm_ups:
        print(
            f"promptus daemon: warming up {width}x{height}, {frames} frames a group "
            "(a compiling backend takes about a minute per shape) ...",
            flush=True,
        )
        try:
            seconds = generator.warm_up(width, height, frames, ENGINE_FRAME_FORMAT)
        except ValueError as error:
            raise CommandError(f"--warm-up: {error}") from None
        print(f"promptus daemon: warm in {seconds:.1f} s", flush=True)
    try:
        # a backend that compiles per shape is measured on the shapes just compiled
        probes = warm_ups if generator.backend.specialises_shapes else None
        daemon = Daemon(generator, settings, probe_calls=probes)
        asyncio.run(serve_announced(daemon, args.ready_file))
    except OSError as error:  # port in use, address not available
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {error}") from None
    return 0
