"""``promptus eval``: rate-quality of a ladder's levels next to x264, x265, SVT-AV1 and a VAE baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptus.errors import CommandError
from promptus.options import (
    FROM_LADDER,
    add_generator_options,
    add_threads_option,
    apply_threads,
    generator_for_ladder,
    load_generator_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ladder", metavar="LADDER", type=Path, help="ladder directory (manifest.json)"
    )
    parser.add_argument(
        "--reference",
        required=True,
        help="the source video or frame folder the ladder was fitted to",
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="directory for rate_quality.{md,json,png}"
    )
    add_generator_options(parser, default=FROM_LADDER)
    parser.add_argument(
        "--codecs", default="x264,x265,svt-av1", help="classic codecs to compare (comma-separated)"
    )
    parser.add_argument(
        "--no-vmaf",
        action="store_true",
        help="skip the VMAF column (vmaf-torch, on the generator's device; pip install '.[vmaf]')",
    )
    add_threads_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def seeded_weights_note(generator: str) -> str | None:
    """The report's warning for a generator whose UNet is seeded random weights (else None)."""
    from engines.variants import VARIANTS

    if not VARIANTS[generator].seeded_weights:
        return None
    return (
        f"Its UNet has seeded random weights ({generator}): the Promptus rows show that "
        "the pipeline runs end to end, but their figures measure nothing about prompts as a "
        "codec. Numbers that mean something need a trained generator (nano, or sd-turbo with "
        "its weights)."
    )


def run(args: argparse.Namespace) -> int:
    from authoring.baselines import CLASSIC_CODECS
    from authoring.evaluation import evaluate, report_notes, table, write_report
    from authoring.metrics import vmaf_missing
    from authoring.source import load_source
    from prompts.ladder import Ladder
    from prompts.manifest import ManifestError

    apply_threads(args)
    codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
    unknown = [c for c in codecs if c not in CLASSIC_CODECS]
    if unknown:
        raise CommandError(
            f"unknown codec {unknown[0]!r} (choose from {', '.join(CLASSIC_CODECS)})"
        )
    try:
        ladder = Ladder(args.ladder)
    except (OSError, ManifestError, ValueError) as error:
        raise CommandError(f"cannot read ladder {args.ladder}: {error}") from None
    stream = ladder.manifest.stream
    if ladder.manifest.chunk_count == 0:
        raise CommandError(f"ladder {args.ladder} has no published chunks")
    if stream.width != stream.height:
        raise CommandError(
            f"ladder frames are {stream.width}x{stream.height}; eval handles square streams"
        )
    args.generator = args.generator or generator_for_ladder(stream.generator_id)
    generator = load_generator_from_args(args)
    generator.check_generator_id(stream.generator_id)
    frames = stream.chunk_range(ladder.manifest.chunk_count - 1)[1]
    reference = load_source(args.reference, stream.width, max_frames=frames).frames
    if len(reference) < frames:
        raise CommandError(f"reference has {len(reference)} frames, the ladder {frames}")
    taesd = None
    if args.taesd is not None:
        from engines.taesd import load_taesd

        try:
            taesd = load_taesd(args.taesd, need_encoder=True)
        except (OSError, ValueError) as error:
            raise CommandError(f"cannot load TAESD for the VAE baseline: {error}") from None
    why_no_vmaf = "--no-vmaf was given" if args.no_vmaf else vmaf_missing()
    vmaf_device = None if why_no_vmaf else str(generator.device)
    points = evaluate(
        ladder, reference, generator, codecs=codecs, taesd=taesd, vmaf_device=vmaf_device,
        progress=not args.quiet,
    )  # fmt: skip
    title = f"{args.ladder.name}: {stream.width}x{stream.height}, {frames} frames, {stream.generator_id}"
    about = [
        f"Promptus rows: the ladder's prompts decoded by generator {generator.name} "
        f"(`{generator.generator_id}`, --generator {args.generator}) on {generator.device}."
    ]
    note = seeded_weights_note(args.generator)
    if note is not None:
        about.append(note)
    notes = report_notes(points, about, why_no_vmaf)
    write_report(points, args.out, title, notes)
    print("\n".join(notes) + "\n")
    print(table(points), end="")
    print(f"wrote {args.out / 'rate_quality.md'}, .json, .png")
    return 0
