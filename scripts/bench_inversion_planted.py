"""Inversion benchmarks on planted content (frames the tiny generator made from a smooth prompt path).

Two questions, answered on content the generator can represent (on natural video the tiny
generators, with seeded random weights, cannot get past ~7 dB whatever the schedule):

* ``warmstart``: coded bytes per keyframe (the chunk codec's delta coding) with and without
  warm starting, both fitted to the same PSNR target.
* ``presets``: quality and time of ``fast`` versus ``reference`` (the original iteration counts).

Prints a table and writes ``docs/benchmarks/inversion_<mode>.json``.

    python scripts/bench_inversion_planted.py warmstart
    python scripts/bench_inversion_planted.py presets --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from benchkit import write_document

from authoring.build import FitOptions, fit_level
from authoring.levels import LevelSpec
from authoring.metrics import psnr_per_frame
from authoring.planted import planted_clip
from authoring.presets import get_preset
from authoring.source import SourceVideo
from engines import load_generator
from engines.devices import card_name
from prompts.chunk import encode_chunk
from prompts.ladder import split_into_chunks
from prompts.manifest import StreamInfo
from prompts.stream_model import CONTEXT_DIM, CONTEXT_TOKENS

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
FPS = 30.0


def chunk_frames(frames: int, interval: int) -> int:
    """One chunk over the whole clip, so that every keyframe after the first can be delta-coded."""
    return -(-frames // interval) * interval


def fit(
    gen: object, frames: np.ndarray, init: np.ndarray, level: LevelSpec, options: FitOptions
) -> dict[str, object]:
    started = time.perf_counter()
    fitted = fit_level(
        gen,
        SourceVideo(frames, FPS),
        init,
        level,
        chunk_frames(len(frames), level.interval),
        options,
        progress=False,
    )
    seconds = time.perf_counter() - started
    stream = StreamInfo(
        fps=FPS,
        width=frames.shape[2],
        height=frames.shape[1],
        frames=len(frames),
        chunk_frames=chunk_frames(len(frames), level.interval),
        generator_id=gen.generator_id,
        generator_name=gen.name,
    )  # type: ignore[attr-defined]
    chunks = split_into_chunks(
        tuple(fitted.state.keyframes), stream, level=0, interval=level.interval
    )
    coded = sum(len(encode_chunk(c)) for c in chunks)
    keyframes = len(fitted.state.keyframes)
    return {
        "psnr_mean": round(float(psnr_per_frame(fitted.frames, frames).mean()), 2),
        "psnr_min": round(float(psnr_per_frame(fitted.frames, frames).min()), 2),
        "bytes_per_keyframe": round(coded / keyframes, 1),
        "raw_bytes_per_keyframe": level.rank * (CONTEXT_TOKENS + CONTEXT_DIM),
        "iterations": sum(s.iterations for s in fitted.state.stats),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("warmstart", "presets"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument(
        "--target-psnr",
        type=float,
        default=30.0,
        help="warmstart: the equal quality both runs stop at",
    )
    parser.add_argument(
        "--iterations", default="400,150", help="warmstart: FIRST,LATER budgets (fast preset)"
    )
    parser.add_argument(
        "--warm-lr",
        type=float,
        default=None,
        help="warmstart: override the preset's warm-start learning rate",
    )
    parser.add_argument(
        "--delta-penalty",
        type=float,
        default=None,
        help="warmstart: override the preset's rate term",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="presets: 1/100 of the budgets (checks the script, measures nothing)",
    )
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)  # the shared development machine
    gen = load_generator("tiny", device=args.device, dtype=torch.float32)  # quality, not speed
    frames, init = planted_clip(gen, args.size, args.frames, args.interval, args.rank, args.seed)
    level = LevelSpec(args.rank, args.interval)
    rows: dict[str, dict[str, object]] = {}
    if args.mode == "warmstart":
        first, later = (int(x) for x in args.iterations.split(","))
        preset = get_preset("fast").with_budgets(first, later).with_target(args.target_psnr)
        if args.warm_lr is not None:
            preset = dataclasses.replace(preset, warm_lr=args.warm_lr)
        if args.delta_penalty is not None:
            preset = dataclasses.replace(preset, delta_penalty=args.delta_penalty)
        for name, warm in (("warm start", True), ("cold start", False)):
            rows[name] = fit(
                gen, frames, init, level, FitOptions(preset=preset, warm_start=warm, seed=1)
            )
        ratio = rows["cold start"]["bytes_per_keyframe"] / rows["warm start"]["bytes_per_keyframe"]  # type: ignore[operator]
        summary = {"cold_over_warm_bytes": round(ratio, 3)}
    else:
        for name in ("fast", "reference"):
            preset = get_preset(name)
            if args.smoke:
                preset = preset.with_budgets(
                    preset.first_iterations // 100, preset.later_iterations // 100
                )
            rows[name] = fit(gen, frames, init, level, FitOptions(preset=preset, seed=1))
            print(name, rows[name], flush=True)
        summary = {
            "psnr_cost_of_fast_db": round(
                rows["reference"]["psnr_mean"] - rows["fast"]["psnr_mean"], 2
            )
        }  # type: ignore[operator]
    keys = list(next(iter(rows.values())))
    print("| run | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(str(row[k]) for k in keys) + " |")
    print(summary)
    document = {
        "mode": args.mode,
        "device": card_name(args.device),
        "settings": vars(args),
        "generator": gen.generator_id,
        "rows": rows,
        **summary,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_document(OUT_DIR / f"inversion_{args.mode}.json", document, quiet=True)


if __name__ == "__main__":
    main()
