"""Authoring at internet scale, on paper: GPU-hours, seams and wall time from measured numbers.

Inputs (both measured, both in docs/benchmarks/):
- ``inversion_gpu_sd-turbo_bfloat16.json`` (one H200, bf16): ms per fitting iteration for a
  batched interval (pixel and latent loss) and for one frame (a cold keyframe is fitted alone);
- ``cluster_sd-turbo_nvidia-h100.json`` (Ray on 4 H100s): scaling efficiency and the bytes a
  closed seam adds at r8n10.

Model. GPU time is proportional to frames fitted x iterations, so a level costs the same GPU-seconds
per video-second whatever its rank and interval (``g``, the preset's rows in the first file). A
closed segment of S seconds adds one cold keyframe (``first_iterations`` one-frame iterations:
``seam``) and one stored keyframe (``seam_bytes``). So, per level:

    GPU-s per video-s = g + seam / S            seam share = seam / (g S + seam)
    bytes overhead     = seam_bytes / (S x the level's open bytes per second)
    wall time on n GPUs = ceil(tasks / n) x task seconds / efficiency,  tasks = levels x titles x T / S

Prints the tables, writes ``docs/benchmarks/cluster_cost_model.json`` and ``docs/authoring_cost.png``.

    python scripts/cost_model_cluster.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "docs" / "benchmarks"
FPS = 30.0
INTERVAL = 10
SEGMENTS = (5, 10, 20, 30, 60, 120)  # seconds
PRESETS = {  # name: (first iterations, later iterations, latent share) as in authoring/presets.py
    "demo": (80, 12, 1.0),
    "fast": (1000, 150, 0.5),
    "reference": (10000, 1500, 0.0),
}
TITLE_HOURS = 2.0
LEVELS = 4  # the default ladder r2n10,r4n10,r8n10,r16n5


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timing = json.loads((BENCH / "inversion_gpu_sd-turbo_bfloat16.json").read_text())
    cluster = json.loads((BENCH / "cluster_sd-turbo_nvidia-h100.json").read_text())
    ms = timing["ms_per_iteration"]
    keyframes_per_second = FPS / INTERVAL
    closing = {row["variant"]: row for row in cluster["closing"]}
    open_row = closing["open"]
    seams = [
        (row["bytes"] - open_row["bytes"]) / (row["segments"] - 1)
        for row in cluster["closing"]
        if row["segments"] > 1
    ]
    seam_bytes = sum(seams) / len(seams)
    open_bytes_per_second = open_row["bytes"] / (cluster["frames"] / FPS)
    efficiency = min(row["efficiency"] for row in cluster["scaling"])

    rows = []
    for name, (first, later, latent) in PRESETS.items():
        per_keyframe = (
            later * (latent * ms["latent_batch"] + (1 - latent) * ms["pixel_batch"]) / 1e3
        )
        g = keyframes_per_second * per_keyframe
        seam = first * ms["pixel_batch1"] / 1e3  # upper bound: the latent phase is cheaper
        for seconds in (*SEGMENTS, math.inf):
            per_video_second = g + (seam / seconds if math.isfinite(seconds) else 0.0)
            rows.append({
                "preset": name, "segment_seconds": seconds if math.isfinite(seconds) else "open",
                "gpu_s_per_video_s": per_video_second,
                "gpu_hours_per_title_hour_per_level": per_video_second,  # s/s == h/h
                "seam_gpu_share": (seam / seconds) / per_video_second if math.isfinite(seconds) else 0.0,
                "seam_bytes_share": seam_bytes / (seconds * open_bytes_per_second)
                if math.isfinite(seconds) else 0.0,
                "seam_gpu_seconds": seam, "open_gpu_s_per_video_s": g,
            })  # fmt: skip

    def row_for(preset: str, seconds: float) -> dict:
        return next(r for r in rows if r["preset"] == preset and r["segment_seconds"] == seconds)

    wall = []
    for titles in (1, 100, 10000):
        for preset in ("fast", "reference"):
            row = row_for(preset, 30)
            tasks = LEVELS * titles * math.ceil(TITLE_HOURS * 3600 / 30)
            task_seconds = row["gpu_s_per_video_s"] * 30
            for gpus in (1, 4, 16, 64, 256, 1024, 4096, 16384):
                hours = math.ceil(tasks / gpus) * task_seconds / efficiency / 3600
                wall.append({"titles": titles, "preset": preset, "gpus": gpus, "tasks": tasks,
                             "task_gpu_seconds": task_seconds, "wall_hours": hours})  # fmt: skip

    print(f"inputs: {timing['device']} ms/iteration {ms}; seam {seam_bytes:.0f} B at r8n10 "
          f"({open_bytes_per_second:.0f} B/s open); scaling efficiency >= {efficiency:.1%} "
          f"({cluster['card']})")  # fmt: skip
    print(
        "\n| preset | segment s | GPU-h per title-h per level | seams: GPU share | seams: bytes share |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} | {r['segment_seconds']} | {r['gpu_hours_per_title_hour_per_level']:.1f} "
              f"| {r['seam_gpu_share']:.1%} | {r['seam_bytes_share']:.1%} |")  # fmt: skip
    print(f"\nwall time, {TITLE_HOURS:g} h titles x {LEVELS} levels, 30 s segments")
    print("| titles | preset | GPUs | tasks | wall hours |")
    print("|---:|---|---:|---:|---:|")
    for w in wall:
        print(
            f"| {w['titles']} | {w['preset']} | {w['gpus']} | {w['tasks']} | {w['wall_hours']:.2f} |"
        )

    figure, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    for name in PRESETS:
        mine = [r for r in rows if r["preset"] == name and r["segment_seconds"] != "open"]
        a.plot(SEGMENTS, [r["gpu_hours_per_title_hour_per_level"] for r in mine], "o-", label=name)
        b.plot(SEGMENTS, [100 * r["seam_gpu_share"] for r in mine], "o-", label=f"GPU, {name}")
    b.plot(SEGMENTS, [100 * seam_bytes / (s * open_bytes_per_second) for s in SEGMENTS], "k--",
           label="bytes (r8n10)")  # fmt: skip
    a.set(xscale="log", yscale="log", xlabel="segment length (s)",
          ylabel="GPU-hours per title-hour per level", title="Fitting cost (H200 timings)")  # fmt: skip
    b.set(xscale="log", xlabel="segment length (s)", ylabel="share spent on seams (%)",
          title="What closing segments costs")  # fmt: skip
    for titles, style in ((1, "-"), (100, "--"), (10000, ":")):
        for preset, colour in (("fast", "C1"), ("reference", "C2")):
            mine = [w for w in wall if w["titles"] == titles and w["preset"] == preset]
            c.plot([w["gpus"] for w in mine], [w["wall_hours"] for w in mine], style, color=colour,
                   label=f"{titles} title(s), {preset}")  # fmt: skip
    c.set(xscale="log", yscale="log", xlabel="GPUs", ylabel="wall hours",
          title=f"{TITLE_HOURS:g} h titles x {LEVELS} levels, 30 s segments")  # fmt: skip
    for axis in (a, b, c):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(ROOT / "docs" / "authoring_cost.png", dpi=110)
    (BENCH / "cluster_cost_model.json").write_text(
        json.dumps({"inputs": {"timing": timing, "seam_bytes": seam_bytes,
                               "open_bytes_per_second": open_bytes_per_second,
                               "efficiency": efficiency, "card_scaling": cluster["card"]},
                    "rows": rows, "wall": wall}, indent=1, default=str) + "\n"
    )  # fmt: skip
    print("wrote docs/authoring_cost.png and docs/benchmarks/cluster_cost_model.json")


if __name__ == "__main__":
    main()
