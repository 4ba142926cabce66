"""Segment-parallel fitting on a Ray cluster: scaling over GPUs, and what closing segments costs.

SD-Turbo's architecture with seeded random weights (speed does not depend on weight values) and
short fixed budgets (no early stop, so every task does the same work). The clip is planted: the
generator itself makes it from a smooth prompt path, so PSNR says how well a fit recovers it.

1. Closing cost: the same clip fitted as one open warm-started sequence and as closed segments of
   1, 2, ... chunks; per variant the coded bytes, mean PSNR and summed GPU-seconds of the tasks.
2. Scaling: the real task code (``authoring.tasks.fit_segment_task`` on ``authoring.ray_runner``,
   one task per closed segment asking one GPU) with at most k tasks in flight for k = 1, 2, 4
   GPUs, ``tasks_per_gpu`` tasks each; throughput (tasks and video-seconds per wall second) and
   efficiency against k times the 1-GPU throughput.

Prints both tables and writes ``docs/benchmarks/cluster_<arch>_<card>.json``.

    python scripts/bench_cluster.py                                      # on a machine of 4 GPUs
    python scripts/bench_cluster.py --arch tiny --size 64 --cpus 2 --gpus 0 --frames 21 \\
        --chunk-frames 10 --interval 5 --rank 2 --budgets 4,2 --closing 1 --tasks-per-gpu 1 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit import write_document

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
FPS = 30.0


@dataclass(frozen=True)
class RandomGenerator:
    """Loads SD-Turbo's (or the tiny) architecture with random weights from ``seed``, built on the
    device (``engines.loaders.random_networks``: identical on every worker of one GPU model)."""

    arch: str = "sd-turbo"
    seed: int = 0

    def load(self, device: str):  # type: ignore[no-untyped-def]
        import torch

        from engines.backends import BackendOptions
        from engines.loaders import generator_from_networks, random_networks

        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        networks = random_networks(self.arch, self.seed, device)
        return generator_from_networks(
            self.arch, networks, BackendOptions(device=device, dtype=dtype)
        )


def make_clip(
    loader: RandomGenerator,
    size: int,
    frames: int,
    interval: int,
    rank: int,
    chunk_frames: int,
    resources,
):  # type: ignore[no-untyped-def]
    """A planted clip, made on a worker: frames the generator can reproduce."""
    from authoring.planted import planted_clip
    from authoring.tasks import worker_generator

    generator = worker_generator(loader, resources.device)
    clip, _ = planted_clip(generator, size, frames, interval=interval, rank=rank,
                           chunk_frames=chunk_frames)  # fmt: skip
    return clip


def fixed_budget_options(first: int, later: int):  # type: ignore[no-untyped-def]
    """``fast`` with the given budgets, never stopping early (every task does the same work)."""
    from authoring.build import FitOptions
    from authoring.presets import get_preset

    preset = dataclasses.replace(
        get_preset("fast").with_budgets(first, later), stop_after_plateaus=0, target_psnr=None
    )
    return FitOptions(preset=preset, perceptual="none")


def run_tasks(runner, tasks, limit):  # type: ignore[no-untyped-def]
    """Submit ``tasks`` (fn, args, name) keeping at most ``limit`` in flight; results in order."""
    from authoring.runner import TaskResources

    results = [None] * len(tasks)
    resources = tasks[0][2] if tasks else TaskResources()
    queue = list(enumerate(tasks))
    started = time.perf_counter()
    in_flight = 0
    while queue or in_flight:
        while queue and in_flight < limit:
            index, (fn, args, res, name) = queue.pop(0)
            runner.submit(fn, *args, name=name, resources=res, tag=index)
            in_flight += 1
        done = next(runner.as_completed())
        in_flight -= 1
        if not done.ok:
            raise RuntimeError(f"task {done.handle.name} failed: {done.error}")
        results[done.handle.tag] = done.value
    del resources
    return results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=("sd-turbo", "tiny"), default="sd-turbo")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=120, help="clip frames (4 chunks)")
    parser.add_argument("--chunk-frames", type=int, default=30)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--budgets", default="20,8", help="iterations FIRST,LATER")
    parser.add_argument("--closing", default="1,2", help="closed segment lengths in chunks")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of the local cluster")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local cluster")
    parser.add_argument("--scale", default="1,2,4", help="GPU counts (CPU slots without GPUs)")
    parser.add_argument("--tasks-per-gpu", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np

    from authoring.catalog import assemble_ladder  # noqa: F401  (the path a real run takes)
    from authoring.cluster import open_runner
    from authoring.levels import LevelSpec
    from authoring.runner import TaskResources
    from authoring.segments import cut_segments
    from authoring.tasks import fit_segment_task, prepare_title
    from prompts.chunk import encode_chunk

    first, later = (int(x) for x in args.budgets.split(","))
    options = fixed_budget_options(first, later)
    loader = RandomGenerator(args.arch)
    level = LevelSpec(args.rank, args.interval)
    t0 = time.perf_counter()
    runner = open_runner("local", local_gpus=args.gpus, local_cpus=args.cpus)
    print(f"{runner.description} (ray.init {time.perf_counter() - t0:.1f} s)", flush=True)
    resources = TaskResources(gpus=1) if runner.gpus else TaskResources(cpus=1)
    units = runner.gpus or runner.cpus
    try:
        ((clip,), _) = (run_tasks(runner, [(make_clip, (loader, args.size, args.frames, args.interval, args.rank, args.chunk_frames, resources), resources, "clip")], 1))  # fmt: skip
        frames_ref = runner.put(clip)
        ((setup_out,), _) = run_tasks(runner, [(prepare_title, (frames_ref, loader, resources), resources, "prepare")], 1)  # fmt: skip
        setup = setup_out.value
        card = setup_out.device
        print(f"clip {clip.shape}, card {card}", flush=True)

        # 1. Closing cost: open sequence vs closed segments, all variants' tasks at once.
        variants = [("open", 0)] + [
            (f"closed {n} chunk(s)", int(n)) for n in args.closing.split(",")
        ]
        tasks, owners = [], []
        for label, step in variants:
            for segment in cut_segments(
                label.replace(" ", "_"), len(clip), args.chunk_frames, [level], step
            ):
                tasks.append((fit_segment_task, (frames_ref, segment, loader, options, setup.init_latent, None, resources), resources, f"fit {segment.name}"))  # fmt: skip
                owners.append(label)
        outputs, closing_wall = run_tasks(runner, tasks, units)
        closing = []
        for label, _ in variants:
            mine = [o for o, owner in zip(outputs, owners, strict=True) if owner == label]
            chunks = [c for o in mine for c in o.value.chunks]
            psnrs = [q["psnr"] for o in mine for q in o.value.quality]
            closing.append({
                "variant": label, "segments": len(mine),
                "bytes": sum(len(encode_chunk(c)) for c in chunks),
                "keyframes": sum(len(c.keyframes) for c in chunks),
                "mean_psnr": float(np.mean(psnrs)),
                "fit_gpu_seconds": sum(o.value.fit_seconds for o in mine),
                "task_gpu_seconds": sum(o.seconds for o in mine),
                "iterations": sum(o.value.iterations for o in mine),
                "longest_task_seconds": max(o.seconds for o in mine),
            })  # fmt: skip
        open_row = closing[0]
        for row in closing:
            row["bytes_vs_open"] = row["bytes"] / open_row["bytes"]
            row["psnr_vs_open_db"] = row["mean_psnr"] - open_row["mean_psnr"]
            row["fit_seconds_vs_open"] = row["fit_gpu_seconds"] / open_row["fit_gpu_seconds"]

        # 2. Scaling: 1-chunk closed segments, at most k in flight.
        segment = cut_segments("scale", len(clip), args.chunk_frames, [level], 1)[0]
        scaling = []
        for k in (int(x) for x in args.scale.split(",")):
            if k > units:
                continue
            count = k * args.tasks_per_gpu
            task = (fit_segment_task, (frames_ref, segment, loader, options, setup.init_latent, None, resources), resources, "fit scale")  # fmt: skip
            outs, wall = run_tasks(runner, [task] * count, k)
            seconds_video = count * segment.frame_count / FPS
            scaling.append({
                "gpus": k, "tasks": count, "wall_seconds": wall,
                "tasks_per_second": count / wall, "video_seconds_per_wall_second": seconds_video / wall,
                "mean_task_seconds": float(np.mean([o.seconds for o in outs])),
                "mean_fit_seconds": float(np.mean([o.value.fit_seconds for o in outs])),
                "devices": sorted({o.device for o in outs}),
            })  # fmt: skip
            print(f"k={k}: {count} tasks in {wall:.1f} s", flush=True)
        base = scaling[0]["tasks_per_second"] / scaling[0]["gpus"] if scaling else 0
        for row in scaling:
            row["efficiency"] = row["tasks_per_second"] / (row["gpus"] * base)
    finally:
        runner.close()

    print(f"\ncard: {card}; clip {len(clip)} frames {args.size}x{args.size}, level {level.name}, "
          f"chunk {args.chunk_frames} frames, budgets {first}/{later}, pixel loss (MSE)")  # fmt: skip
    print(
        "\n| variant | segments | bytes | x open | keyframes | mean PSNR | dPSNR | fit GPU-s | x open |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in closing:
        print(f"| {r['variant']} | {r['segments']} | {r['bytes']} | {r['bytes_vs_open']:.3f} | "
              f"{r['keyframes']} | {r['mean_psnr']:.2f} | {r['psnr_vs_open_db']:+.2f} | "
              f"{r['fit_gpu_seconds']:.1f} | {r['fit_seconds_vs_open']:.2f} |")  # fmt: skip
    print("\n| card | GPUs | tasks | wall s | tasks/s | video-s/s | task s | fit s | efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in scaling:
        print(f"| {card} | {r['gpus']} | {r['tasks']} | {r['wall_seconds']:.1f} | "
              f"{r['tasks_per_second']:.3f} | {r['video_seconds_per_wall_second']:.3f} | "
              f"{r['mean_task_seconds']:.1f} | {r['mean_fit_seconds']:.1f} | {r['efficiency']:.1%} |")  # fmt: skip
    result = {
        "card": card, "host": platform.node(), "arch": args.arch, "size": args.size,
        "frames": len(clip), "chunk_frames": args.chunk_frames, "level": level.name,
        "budgets": [first, later], "ray_description": runner.description,
        "closing_wall_seconds": closing_wall, "closing": closing, "scaling": scaling,
    }  # fmt: skip
    out = (
        args.out
        or OUT_DIR
        / f"cluster_{args.arch}_{card.split('(')[-1].strip(') ').replace(' ', '-').lower()}.json"
    )
    write_document(out, result)


if __name__ == "__main__":
    main()
