"""The nano generator's rank curve on footage it never saw, next to codecs and two floors.

    python scripts/bench_nano_quality.py                        # the demo clip and ../shared sky
    python scripts/bench_nano_quality.py --clips demo --codecs x264

For each clip: a ladder of r1/r2/r4/r8 at interval 10 fitted with the shipped weights (preset
``encoder``: the prompt encoder's factors as they come; ``--preset`` for another), then
``authoring.evaluation.evaluate``: every level decoded in sequence and scored, x264/x265 at each
level's bitrate, a thumbnail codec at each level's bitrate and the stream's start latent
redrawn for every frame. Prints one table per clip, writes the rows to
``docs/benchmarks/nano_rank_curve.json`` and the plots to ``docs/nano_rank_curve_<clip>.png``.
The training run that made the weights is summarised from ``--training`` (its checkpoint
history, committed as docs/benchmarks/nano_training_h100.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from benchkit import write_document

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PROMPTUS_SHARED", REPO.parent / "shared"))
# name -> (source, chunk seconds): the demo plays 1 s chunks; sky uses the ladder default.
CLIPS = {
    "demo": (REPO / "promptus" / "demo_clip" / "caminandes-llama-192.mp4", 1.0),
    "sky": (SHARED / "media" / "sky", 2.0),
}
LEVELS = "r1n10,r2n10,r4n10,r8n10"
SIZE = 192


def training_summary(path: Path) -> dict:
    """GPU-minutes, steps and card of the training history in ``path`` (a checkpoint state)."""
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    history = state.get("history") or state.get("config", {}).get("history", [])
    last = history[-1] if history else {}
    return {
        "card": state.get("card"),
        "training_minutes": last.get("minutes"),
        "steps": last.get("step"),
        "heldout_during_training": last.get("heldout_clip_02_caminandes"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", default=",".join(CLIPS), help="demo, sky (../shared)")
    parser.add_argument("--codecs", default="x264,x265")
    parser.add_argument("--preset", default="encoder")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--vmaf", default="cpu", help="device of the VMAF column ('none': no VMAF)")
    parser.add_argument("--json", type=Path, default=REPO / "docs/benchmarks/nano_rank_curve.json")
    parser.add_argument(
        "--training", type=Path, default=REPO / "docs/benchmarks/nano_training_h100.json"
    )
    args = parser.parse_args()

    import torch

    from authoring.build import FitOptions, build_ladder
    from authoring.evaluation import evaluate, plot, table
    from authoring.levels import parse_levels
    from authoring.presets import get_preset
    from authoring.source import load_source
    from engines import load_generator
    from engines.devices import card_name
    from prompts.ladder import Ladder

    torch.set_num_threads(args.threads)
    generator = load_generator("nano", device="cpu")
    rows = []
    for name in args.clips.split(","):
        source_path, chunk_seconds = CLIPS[name]
        if not source_path.exists():
            print(f"skipping {name}: {source_path} is missing", file=sys.stderr)
            continue
        source = load_source(source_path, SIZE)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            build_ladder(
                source, out, generator=generator, levels=parse_levels(LEVELS),
                options=FitOptions(preset=get_preset(args.preset)), chunk_seconds=chunk_seconds,
            )  # fmt: skip
            points = evaluate(
                Ladder(out),
                source.frames,
                generator,
                codecs=tuple(args.codecs.split(",")),
                vmaf_device=None if args.vmaf == "none" else args.vmaf,
            )
        title = (
            f"nano on {name} ({SIZE}px, {len(source.frames)} frames, {chunk_seconds:g} s chunks)"
        )
        print(f"\n{title}\n{table(points)}")
        (REPO / "docs" / f"nano_rank_curve_{name}.png").write_bytes(plot(points, title))
        rows += [{"clip": name, "chunk_seconds": chunk_seconds, **vars(p)} for p in points]
        promptus = {p.setting: p.psnr for p in points if p.method == "promptus"}
        start = next(p.psnr for p in points if p.method == "start-latent")
        print(
            f"r8n10 - r2n10: {promptus['r8n10'] - promptus['r2n10']:+.2f} dB; "
            f"lowest level over the start latent: {min(promptus.values()) - start:+.2f} dB"
        )
    document = {
        "generator": generator.generator_id,
        "preset": args.preset,
        "size": SIZE,
        "levels": LEVELS,
        "machine": card_name("cpu"),
        "training": training_summary(args.training),
        "rows": rows,
    }
    write_document(args.json, document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
