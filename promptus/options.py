"""The generator option group, written once for every command that loads a generator.

One rule for defaults: a command that makes prompts or plays them (``daemon``, ``invert``,
``ladder``) defaults to ``DEFAULT_GENERATOR``, which runs on any CPU with nothing to download;
``demo`` defaults to ``nano`` (also CPU and nothing to download, and its pictures mean
something); a command that reads a finished ladder (``generate``, ``eval``) defaults to the
generator the ladder names. ``--device`` defaults to ``auto`` everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common.errors import UserError
from engines.variants import BACKEND_KINDS, DEFAULT_BACKEND, DEFAULT_GENERATOR, VARIANTS
from promptus.errors import CommandError

FROM_LADDER = None  # ``default=FROM_LADDER``: the generator the ladder's manifest names


def add_generator_options(
    parser: argparse.ArgumentParser,
    *,
    default: str | None = DEFAULT_GENERATOR,
    backend: bool = False,
) -> None:
    """``--generator --weights --taesd --device`` (and ``--backend`` for the real-time path)."""
    group = parser.add_argument_group("generator")
    names = "; ".join(f"{name}: {variant.summary}" for name, variant in VARIANTS.items())
    from_ladder = " (default: the generator the ladder names)" if default is FROM_LADDER else ""
    group.add_argument(
        "--generator", choices=tuple(VARIANTS), default=default, help=names + from_ladder
    )
    group.add_argument(
        "--weights",
        type=Path,
        metavar="PATH",
        help="UNet weights: sd_turbo.safetensors (single-file LDM layout) or a diffusers folder, "
        "needed by sd-turbo (default: none)",
    )
    group.add_argument(
        "--taesd",
        type=Path,
        metavar="DIR",
        help="TAESD weights folder (taesd_encoder/decoder .safetensors or .pth), needed by "
        "tiny-taesd and sd-turbo (default: none)",
    )
    group.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when present, else the CPU), cpu, cuda or cuda:N",
    )
    if backend:
        group.add_argument(
            "--backend",
            choices=BACKEND_KINDS,
            default=DEFAULT_BACKEND,
            help="generation backend: auto (TensorRT when installed, else the compiled PyTorch "
            "path, on CUDA; eager PyTorch on the CPU), torch, fast, tensorrt (docs/realtime.md)",
        )


def check_weights_given(args: argparse.Namespace) -> None:
    """Refuse before anything loads when the chosen generator needs weight files not given."""
    variant = VARIANTS[args.generator]
    missing = [
        flag
        for flag, needed, value in (
            ("--weights", variant.needs_weights, args.weights),
            ("--taesd", variant.needs_taesd, args.taesd),
        )
        if needed and value is None
    ]
    if missing:
        raise CommandError(
            f"--generator {args.generator} needs {' and '.join(missing)} (weights are never "
            f"downloaded; docs/engines.md says where they come from); without weight files use "
            f"--generator {DEFAULT_GENERATOR} ({VARIANTS[DEFAULT_GENERATOR].summary})"
        )


def load_generator_from_args(args: argparse.Namespace, **options: Any) -> Any:
    """The generator the options name (``options`` go to ``engines.load_generator``)."""
    check_weights_given(args)
    from engines import load_generator

    try:
        return load_generator(
            args.generator, weights=args.weights, taesd=args.taesd, device=args.device, **options
        )
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError) as error:
        raise CommandError(f"cannot load generator {args.generator}: {error}") from None


def generator_for_ladder(generator_id: str) -> str:
    """The ``--generator`` name that loads the generator a ladder names (its id's family)."""
    family = generator_id.split(":", 1)[0]
    if family not in VARIANTS:
        raise CommandError(
            f"the ladder names generator {generator_id!r}, which no --generator name loads; "
            f"pass --generator ({', '.join(VARIANTS)}) with its weights"
        )
    return family


DEFAULT_LEVELS = "r2n10,r4n10,r8n10,r16n5"


def add_levels_option(parser: argparse.ArgumentParser) -> None:
    """``--levels``: the ladder's levels (``ladder``, ``catalog``, ``live``)."""
    parser.add_argument(
        "--levels", default=DEFAULT_LEVELS, help="comma-separated r<rank>n<interval>"
    )


def levels_from_args(args: argparse.Namespace) -> list[Any]:
    """The ``LevelSpec`` list ``--levels`` names (CommandError naming a bad entry)."""
    from authoring.levels import parse_levels

    try:
        return parse_levels(args.levels)
    except ValueError as error:
        raise CommandError(str(error)) from None


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``: torch's CPU threads."""
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads from ``--threads`` (``authoring.jobs.set_threads``)."""
    from authoring.jobs import set_threads

    set_threads(args.threads)
