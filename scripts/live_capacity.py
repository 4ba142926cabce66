"""Capacity of live channels on GPUs, computed from measured rows (no GPU needed to run it).

A live level is fitted segment by segment, one task per (segment, level) on one GPU; inside a
segment the keyframes are fitted one after another (each warm-starts from the one before), so
a segment's task takes

    task_s = F + S * G        F = first_iterations * t1   (the segment's cold first keyframe)
                              G = GPU-seconds per video-second of the later keyframes

and the first frame of a segment is published ``S + task_s`` after it was captured (the
segment must be complete, then fitted). To keep up, a level needs ``task_s / S / e`` GPUs (e:
the measured scaling efficiency of segment tasks on several GPUs). Every level costs about the
same (GPU time follows frames x iterations, not rank or interval: docs/authoring.md), so a
4-level channel needs 4x, and 100 channels 400x.

Inputs (read from the raw JSON of other benchmarks, named on the command line):
- ``--levers``: issue 17's ``inversion_levers_*.json``: G per schedule (rows by ``variant``) and
  the one-frame step time t1 (``step_ms``, "pixel, batch 1").
- ``--cluster``: issue 18's ``cluster_*.json``: the scaling efficiency at 2 and 4 GPUs.

    python scripts/live_capacity.py --levers docs/benchmarks/inversion_levers_h100.json \\
        --cluster docs/benchmarks/cluster_sd-turbo_nvidia-h100.json \\
        --json docs/benchmarks/live_capacity.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

LEVELS_PER_CHANNEL = 4
CHANNELS = 100
SEGMENT_SECONDS = (2.0, 4.0, 10.0, 30.0)  # whole 2 s chunks
ONE_FRAME_STEP = "pixel, batch 1,"  # start of the step_ms label of a one-frame iteration
# (label, levers row, later iterations, first iterations): `fast` as the preset ships it (a
# 1000-iteration cold first keyframe) and with the cold keyframe cut to the later budget
# (`--iterations 50,50`), plus the cheapest measured schedule (20 steps, `--iterations 20,20`).
SCHEDULES = (
    ("fast (1000 / 50)", "fast-b50", 50, 1000),
    ("fast, cold keyframe 50 (--iterations 50,50)", "fast-b50", 50, 50),
    ("20 steps (--iterations 20,20)", "fast", 20, 20),
)


def load_inputs(levers_path: Path, cluster_path: Path) -> dict[str, Any]:
    levers = json.loads(levers_path.read_text())
    cluster = json.loads(cluster_path.read_text())
    rows = {row["variant"]: row for row in levers["rows"]}
    (t1,) = [s["ms"] for s in levers["step_ms"] if s["step"].startswith(ONE_FRAME_STEP)]
    efficiencies = [row["efficiency"] for row in cluster["scaling"] if row["gpus"] > 1]
    return {
        "card": levers["card"],
        "cluster_card": cluster["card"],
        "levers_file": str(levers_path),
        "cluster_file": str(cluster_path),
        "g_rows": {
            name: {
                "gpu_s_per_video_s": rows[name]["gpu_s_per_video_s"],
                "psnr_db": rows[name]["psnr_db"],
            }
            for _, name, _, _ in SCHEDULES
        },  # fmt: skip
        "one_frame_step_ms": t1,
        "efficiency": min(1.0, *efficiencies),
        "settings": levers["settings"],
    }


def model(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, variant, later, first in SCHEDULES:
        g = inputs["g_rows"][variant]["gpu_s_per_video_s"]
        cold_s = first * inputs["one_frame_step_ms"] / 1000
        for segment_s in SEGMENT_SECONDS:
            task_s = cold_s + segment_s * g
            per_level = math.ceil(task_s / segment_s / inputs["efficiency"])
            rows.append(
                {
                    "schedule": label, "levers_row": variant, "later_iterations": later,
                    "first_iterations": first, "segment_s": segment_s,
                    "gpu_s_per_video_s": g, "cold_keyframe_s": cold_s, "task_s": task_s,
                    "latency_s": segment_s + task_s, "gpus_per_level": per_level,
                    "gpus_per_channel": per_level * LEVELS_PER_CHANNEL,
                    "gpus_for_100_channels": per_level * LEVELS_PER_CHANNEL * CHANNELS,
                    "psnr_db": inputs["g_rows"][variant]["psnr_db"],
                }
            )  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| schedule | segment s | task s (cold kf + fit) | live latency s | GPUs / level | "
        "GPUs / 4-level channel | GPUs / 100 channels |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['schedule']} | {row['segment_s']:g} | {row['task_s']:.0f} "
            f"({row['cold_keyframe_s']:.1f} + {row['task_s'] - row['cold_keyframe_s']:.0f}) | "
            f"{row['latency_s']:.0f} | {row['gpus_per_level']} | {row['gpus_per_channel']} | "
            f"{row['gpus_for_100_channels']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levers", type=Path, required=True, help="issue 17's levers JSON")
    parser.add_argument("--cluster", type=Path, required=True, help="issue 18's cluster JSON")
    parser.add_argument("--json", type=Path, default=None, help="write inputs and rows here")
    parser.add_argument("--note", default="", help="where the inputs came from (kept in the JSON)")
    args = parser.parse_args()
    inputs = load_inputs(args.levers, args.cluster)
    inputs["note"] = args.note
    rows = model(inputs)
    print(
        f"inputs: {inputs['card']} (G per schedule, one-frame step {inputs['one_frame_step_ms']} "
        f"ms), scaling efficiency {inputs['efficiency']:.3f} ({inputs['cluster_card']})"
    )
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"inputs": inputs, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
