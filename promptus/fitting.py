"""Arguments and input checks shared by ``promptus invert`` and ``promptus ladder``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from authoring.presets import PRESETS
from prompts.stream_model import size_problem
from promptus.errors import CommandError
from promptus.options import add_generator_options, add_threads_option, apply_threads
from promptus.options import load_generator_from_args as load_generator_options


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
    """Size, rate, chunks and the fitting schedule (``fit_options`` reads them): every command
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


def segments_per_step(args: argparse.Namespace, on_gpu: bool) -> int | str:
    """The ``--segments-per-step`` value, its default resolved (auto on CUDA, else 1)."""
    if args.segments_per_step is not None:
        return args.segments_per_step
    return "auto" if on_gpu else 1


def load_fitting_generator(args: argparse.Namespace) -> Any:
    """The generator the options name, set up for fitting.

    On CUDA it runs in bf16: tensor-core speed, and unlike fp16 (the engines' CUDA default,
    fine for inference) its range survives the backward pass.
    """
    import torch

    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    return load_generator_options(args, dtype=torch.bfloat16 if cuda else None)


def fit_options(args: argparse.Namespace) -> Any:
    """The ``FitOptions`` the arguments name, or CommandError (before anything loads)."""
    from authoring.build import FitOptions
    from authoring.losses import perceptual_term
    from authoring.presets import check_perceptual, get_preset

    try:
        preset = get_preset(args.preset).with_target(args.target_psnr)
        if args.iterations is not None:
            preset = preset.with_budgets(*parse_budgets(args.iterations))
        check_perceptual(preset, args.perceptual)
        perceptual_term(args.perceptual)  # a missing or malformed weights file fails here
    except (ValueError, RuntimeError) as error:
        raise CommandError(str(error)) from None
    if args.chunk_seconds <= 0:
        raise CommandError(f"--chunk-seconds must be positive, got {args.chunk_seconds}")
    return FitOptions(
        preset=preset, perceptual=args.perceptual, warm_start=not args.cold_start,
        seed=args.seed, prev_latent_rule=args.prev_latent_rule, vae_weights=args.weights,
        amortised_start=not args.no_prompt_encoder,
    )  # fmt: skip


def prepare(args: argparse.Namespace, levels: list[Any]) -> tuple[Any, Any, Any]:
    """(source video, generator, fit options) for a fitting command, or CommandError.

    Cheap checks come first so that a bad argument never waits for a generator to load.
    """
    from authoring.plan import check_level_geometry
    from authoring.source import SourceError, load_source

    options = fit_options(args)
    apply_threads(args)
    generator = None
    if args.size is None:
        generator = load_fitting_generator(args)
        args.size = generator.native_size[0]
    check_size(args.size)
    try:
        source = load_source(args.source, args.size, max_frames=args.frames, fps=args.fps)
    except SourceError as error:
        raise CommandError(str(error)) from None
    for level in levels:
        try:
            check_level_geometry(len(source.frames), level.interval, level.interval)
        except ValueError as error:
            raise CommandError(f"level {level.name}: {error}") from None
    generator = generator or load_fitting_generator(args)
    return source, generator, options


def parse_budgets(text: str) -> tuple[int, int]:
    """``"300,40"`` -> (300, 40); ValueError otherwise."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--iterations wants two positive integers FIRST,LATER, got {text!r}")
    return int(parts[0]), int(parts[1])


def check_size(size: int) -> None:
    """Refuse an output size no generator can produce."""
    problem = size_problem(size, size)
    if problem is not None:
        raise CommandError(f"--size {size}: {problem}")


def extra_gpu_generators(args: argparse.Namespace, levels: list[Any]) -> list[Any]:
    """With ``--device auto`` on a machine of several GPUs: a copy of the generator per extra GPU."""
    import torch

    if args.device != "auto" or len(levels) < 2 or torch.cuda.device_count() < 2:
        return []
    count = min(torch.cuda.device_count(), len(levels))
    extra = []
    for index in range(1, count):
        copy = argparse.Namespace(**{**vars(args), "device": f"cuda:{index}"})
        extra.append(load_fitting_generator(copy))
    return extra


def run_build(args: argparse.Namespace, levels: list[Any]) -> int:
    """Fit ``levels`` as the arguments say and print a one-line summary per level."""
    from authoring.source import check_source_path

    check_source_path(args.source)  # before torch and the generator load (seconds)
    check_vmaf_option(args)
    from authoring.build import BuildError, build_ladder
    from authoring.checkpoint import CheckpointError

    if segmented(args):
        from authoring.catalog import TitleJob

        (report,) = run_titles(
            args, [TitleJob(args.out.name or "title", Path(args.source), args.out)], levels
        )
        if not report.ok:
            raise CommandError(report.error)
        print_levels(report.manifest)
        print(f"wrote {Path(args.out) / 'manifest.json'}")
        return 0
    source, generator, options = prepare(args, levels)
    try:
        manifest = build_ladder(
            source, args.out, generator=generator, levels=levels, options=options,
            chunk_seconds=args.chunk_seconds, resume=args.resume,
            measure_quality=not args.no_quality, measure_vmaf=args.vmaf, progress=not args.quiet,
            extra_generators=extra_gpu_generators(args, levels),
        )  # fmt: skip
    except (BuildError, CheckpointError) as error:
        raise CommandError(str(error)) from None
    print_levels(manifest)
    print(f"wrote {Path(args.out) / 'manifest.json'}")
    return 0


def check_vmaf_option(args: argparse.Namespace) -> None:
    """Refuse ``--vmaf`` at once where it cannot be measured."""
    if not args.vmaf:
        return
    if args.no_quality:
        raise CommandError(
            "--vmaf is part of the per-chunk quality: it cannot go with --no-quality"
        )
    from authoring.metrics import vmaf_missing

    problem = vmaf_missing()
    if problem is not None:
        raise CommandError(f"--vmaf: {problem}")


def segmented(args: argparse.Namespace) -> bool:
    """Whether the arguments ask for the segment path (a cluster, or closed segments)."""
    return args.cluster != "none" or args.segment_seconds is not None


def run_titles(args: argparse.Namespace, jobs: list[Any], levels: list[Any]) -> list[Any]:
    """Fit ``jobs`` (``authoring.catalog.TitleJob``) segment by segment on the ``--cluster``
    runner; a ``TitleReport`` per job. Nothing loads a generator in this process."""
    from authoring.build import BuildError
    from authoring.catalog import CatalogSettings, build_titles
    from authoring.cluster import open_runner
    from authoring.runner import TaskResources
    from authoring.segments import DEFAULT_SEGMENT_SECONDS, check_segment_options
    from authoring.tasks import GeneratorSpec
    from engines.variants import VARIANTS
    from promptus.options import check_weights_given

    check_vmaf_option(args)
    options = fit_options(args)
    try:
        check_segment_options(options)
    except BuildError as error:
        raise CommandError(str(error)) from None
    check_weights_given(args)
    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    if args.local_cpus is not None and args.local_cpus < 1:
        raise CommandError(f"--local-cpus must be at least 1, got {args.local_cpus}")
    size = args.size if args.size is not None else VARIANTS[args.generator].native_size[0]
    check_size(size)
    settings = CatalogSettings(
        levels=tuple(levels), options=options, size=size, max_frames=args.frames, fps=args.fps,
        chunk_seconds=args.chunk_seconds,
        segment_seconds=DEFAULT_SEGMENT_SECONDS
        if args.segment_seconds is None
        else args.segment_seconds,
        resume=args.resume, measure_quality=not args.no_quality, measure_vmaf=args.vmaf,
    )  # fmt: skip
    loader = GeneratorSpec(args.generator, args.weights, args.taesd)
    runner = open_runner(args.cluster, local_cpus=args.local_cpus)
    try:
        on_gpu = runner.gpus > 0 and args.device != "cpu"
        resources = TaskResources(gpus=1) if on_gpu else TaskResources(cpus=args.threads or 1)
        settings = dataclasses.replace(settings, segments_per_step=segments_per_step(args, on_gpu))
        return build_titles(
            jobs, settings, runner=runner, loader=loader, resources=resources,
            progress=not args.quiet,
        )  # fmt: skip
    finally:
        runner.close()


def print_levels(manifest: Any) -> None:
    """One line per level: rate, chunks, mean PSNR."""
    for level in manifest.levels:
        psnrs = [c.psnr for c in level.chunks if c.psnr is not None]
        quality = f", PSNR {sum(psnrs) / len(psnrs):.2f} dB" if psnrs else ""
        print(f"{level.name}: {level.kbps:.1f} kbps, {len(level.chunks)} chunks{quality}")
