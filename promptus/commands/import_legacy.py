"""`promptus import-legacy DIR --out OUT`: the original release's prompts as a ladder."""

from __future__ import annotations

import argparse

from promptus.errors import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder", help="folder with frame_*.prompt and init.pth (e.g. rank8_interval10)"
    )
    parser.add_argument("--out", required=True, help="ladder directory to write (new, or empty)")
    parser.add_argument(
        "--force", action="store_true", help="replace a non-empty --out (no stale file survives)"
    )
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the video")
    parser.add_argument(
        "--chunk-frames",
        type=int,
        default=None,
        help="frames per chunk (default: the interval multiple nearest 2 s)",
    )
    parser.add_argument(
        "--generator-id",
        default=None,
        help="generator id to record; pass your daemon's id (its ready file, or the player's "
        "notice) when you know the prompts were fitted on its weights (default: an unverified "
        "SD-Turbo id that no daemon plays)",
    )


def run(args: argparse.Namespace) -> int:
    from prompts.legacy import LEGACY_GENERATOR_ID, LegacyImportError, import_legacy

    try:
        manifest = import_legacy(
            args.folder,
            args.out,
            fps=args.fps,
            chunk_frames=args.chunk_frames,
            generator_id=args.generator_id or LEGACY_GENERATOR_ID,
            replace=args.force,
        )
    except (LegacyImportError, ValueError, OSError) as error:
        raise CommandError(str(error)) from None
    level = manifest.levels[0]
    keyframes = sum(c.keyframes for c in level.chunks)
    print(
        f"wrote {args.out}: level {level.name}, {keyframes} keyframes in {len(level.chunks)} chunks, "
        f"{manifest.stream.frames} frames, {level.kbps:.1f} kbps at {manifest.stream.fps:g} fps"
    )
    return 0
