"""The fitting options of ``promptus invert``, ``ladder``, ``catalog`` and ``live``, and the
typed job they name (``authoring.jobs``: the fitting itself happens there)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from authoring.presets import PRESETS
from promptus.errors import CommandError
from promptus.options import add_generator_options, add_threads_option, check_weights_given

if TYPE_CHECKING:
    from authoring.jobs import FitJob, Schedule
    from authoring.levels import LevelSpec


def add_fit_arguments(parser: argparse.ArgumentParser, *, sources: str = "one") -> None:
    """Options every fitting command takes (``sources="many"``: ``SOURCE...``, ``--out`` a folder
    of ladders)."""
    if sources == "many":
        parser.add_argument(
            "sources", nargs="+", metavar="SOURCE",
            help="video files (anything PyAV reads) or folders of frames, one title each",
        )  # fmt: skip
        parser.add_argument(
            "--out", required=True, type=Path, help="folder of ladders: one DIR/<title>/ each"
        )
    else:
        parser.add_argument(
            "source",
            metavar="SOURCE",
            help="video file (anything PyAV reads) or a folder of frames",
        )
        parser.add_argument("--out", required=True, type=Path, help="ladder directory to write")
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="use only the first N frames of the source (default: all)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its checkpoints"
    )
    parser.add_argument(
        "--vmaf",
        action="store_true",
        help="measure each chunk's VMAF too (vmaf-torch on the generator's device; pip install "
        "'.[vmaf]'): the manifest's chunks then carry it for an ABR (the player's ?quality=vmaf)",
    )
    add_schedule_arguments(parser)
    add_cluster_arguments(parser)
    add_generator_options(parser)


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """Size, rate, chunks and the fitting schedule (``schedule`` reads them): every command
    that fits prompts, the live one included."""
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="output size in pixels, a multiple of 64 (default: the generator's native size)",
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="frame rate (default: the video's, 30 for a folder)"
    )
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=2.0,
        help="chunk length in seconds (rounded to whole intervals)",
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="fast",
        help="fitting schedule (docs/inversion.md)",
    )
    parser.add_argument(
        "--iterations",
        default=None,
        metavar="FIRST,LATER",
        help="override the preset's iteration budgets (keyframe 0, later keyframes) "
        "(default: the preset's)",
    )
    parser.add_argument(
        "--perceptual",
        default="ms-ssim",
        help="perceptual loss term: ms-ssim, none, vgg:PATH (VGG16 weights file) or vgg19:PATH "
        "(VGG19 weights file, the release's term; --preset paper needs it)",
    )
    parser.add_argument(
        "--prev-latent-rule",
        choices=("chunk-reset", "chained"),
        default=None,
        help="previous-latent rule of the stream (default: the preset's; chained is the "
        "release's and gives up random access)",
    )
    parser.add_argument(
        "--target-psnr",
        type=float,
        default=None,
        help="stop a keyframe's fit once its frames reach this PSNR, dB (default: none, the "
        "preset's budget decides)",
    )
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="start every keyframe from random factors instead of the previous keyframe",
    )
    parser.add_argument(
        "--no-prompt-encoder",
        action="store_true",
        help="nano: do not start keyframes from its prompt encoder's factors (fit from scratch)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of random (cold) initialisations")
    parser.add_argument(
        "--no-quality", action="store_true", help="skip measuring per-chunk PSNR/SSIM"
    )
    add_threads_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_cluster_arguments(
    parser: argparse.ArgumentParser, default: str = "none", segments_help: str | None = None
) -> None:
    """``--cluster`` (``default``: where tasks run) and ``--segment-seconds`` (``segments_help``
    when the command cuts segments its own way): segment-parallel fitting (docs/authoring.md)."""
    from authoring.segments import DEFAULT_SEGMENT_SECONDS

    group = parser.add_argument_group("segments and cluster")
    group.add_argument(
        "--cluster",
        default=default,
        help="where segment tasks run: none (this process), local (a Ray cluster on this "
        "machine's GPUs or cores), auto (the Ray cluster this machine is part of) or "
        "ray://HOST:PORT; all but none need the extra: pip install '.[cluster]'",
    )
    group.add_argument(
        "--segment-seconds",
        type=float,
        default=None,
        help=segments_help
        or "cut every level into closed segments of about this length, fitted independently "
        f"(0: one open segment per level) (default: {DEFAULT_SEGMENT_SECONDS:g} with --cluster, "
        "else the single-process path)",
    )
    group.add_argument(
        "--segments-per-step",
        type=segments_per_step_arg,
        default=None,
        metavar="N|auto",
        help="segment fits stacked in one optimiser step (one task per batch): N, or auto "
        "(as many as the GPU's free memory holds, up to 8) (default: auto on CUDA, 1 on CPU)",
    )
    group.add_argument(
        "--local-cpus",
        type=int,
        default=None,
        help="--cluster local: CPU slots of the local cluster (default: all cores)",
    )


def segments_per_step_arg(text: str) -> int | str:
    """``--segments-per-step``: a positive count or ``auto``."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or auto, got {text!r}")
    return value


def schedule(args: argparse.Namespace) -> Schedule:
    """The ``authoring.jobs.Schedule`` the arguments name; CommandError for a malformed
    ``--iterations`` or a ``--chunk-seconds`` that is not positive (before anything loads)."""
    from authoring.jobs import Schedule

    budgets = None if args.iterations is None else parse_budgets(args.iterations)
    if args.chunk_seconds <= 0:
        raise CommandError(f"--chunk-seconds must be positive, got {args.chunk_seconds}")
    return Schedule(
        preset=args.preset, budgets=budgets, target_psnr=args.target_psnr,
        perceptual=args.perceptual, prev_latent_rule=args.prev_latent_rule,
        warm_start=not args.cold_start, amortised_start=not args.no_prompt_encoder,
        seed=args.seed, vae_weights=args.weights,
    )  # fmt: skip


def fit_job(args: argparse.Namespace, levels: Sequence[LevelSpec]) -> FitJob:
    """The ``authoring.jobs.FitJob`` the arguments of a fitting command name."""
    from authoring.jobs import FitJob
    from authoring.tasks import GeneratorSpec

    fitting = schedule(args)
    check_weights_given(args)
    return FitJob(
        levels=tuple(levels), schedule=fitting,
        generator=GeneratorSpec(args.generator, args.weights, args.taesd), device=args.device,
        size=args.size, fps=args.fps, max_frames=args.frames, chunk_seconds=args.chunk_seconds,
        resume=args.resume, measure_quality=not args.no_quality, measure_vmaf=args.vmaf,
        progress=not args.quiet, threads=args.threads, cluster=args.cluster,
        segment_seconds=args.segment_seconds, local_cpus=args.local_cpus,
        segments_per_step=args.segments_per_step,
    )  # fmt: skip


def parse_budgets(text: str) -> tuple[int, int]:
    """``--iterations 300,40`` -> (300, 40); CommandError otherwise."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise CommandError(f"--iterations wants two positive integers FIRST,LATER, got {text!r}")
    return int(parts[0]), int(parts[1])


def print_ladder(manifest: Any, out: Path) -> None:
    """One line per level (rate, chunks, mean PSNR), then where the manifest is."""
    for level in manifest.levels:
        psnrs = [c.psnr for c in level.chunks if c.psnr is not None]
        quality = f", PSNR {sum(psnrs) / len(psnrs):.2f} dB" if psnrs else ""
        print(f"{level.name}: {level.kbps:.1f} kbps, {len(level.chunks)} chunks{quality}")
    print(f"wrote {Path(out) / 'manifest.json'}")
