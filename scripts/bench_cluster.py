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

3. Catalogue (``--catalogue``, instead of 1 and 2): the path ``promptus catalog`` takes
   (``authoring.catalog.build_titles`` on ``authoring.ray_runner``: one prepare task per title,
   then one ``fit_segments_task`` per batch of ``--segments-per-step`` closed segments that
   stack, ``auto`` by default as on CUDA), for a catalogue of ``--titles-per-worker`` x k
   planted titles (PNG folders on disk, each its own seed), ``--levels`` (the command's default
   4 levels), on a fresh local Ray cluster of k GPUs (k CPU slots without GPUs) for each k of
   ``--scale``. Each title's frames go to the tasks as a file on shared storage
   (``CatalogSettings.shared_frames``: ``<ladder>/.fit/frames.npy``, mapped by each task), not
   through the object store. Per k: titles/hour, worker-seconds (GPU-s on GPUs) per
   video-second (k x wall / video seconds) and efficiency against k x the 1-worker throughput;
   rows (``card``, ``gpus``, ``workers``, ``efficiency``, ``gpu_s_per_video_s``,
   ``titles_per_hour``, ``segments_per_step``, ...) in
   ``docs/benchmarks/cluster_catalogue_<card>_<arch>.json``.

    python scripts/bench_cluster.py                                      # on a machine of 4 GPUs
    python scripts/bench_cluster.py --arch tiny --size 64 --cpus 2 --gpus 0 --frames 21 \\
        --chunk-frames 10 --interval 5 --rank 2 --budgets 4,2 --closing 1 --tasks-per-gpu 1 --out /tmp/x.json
    python scripts/bench_cluster.py --catalogue                         # on one node of 8 GPUs
    nice python scripts/bench_cluster.py --catalogue --arch tiny --size 64 --gpus 0 --scale 1,2 \\
        --frames 60 --budgets 4,2 --segments-per-step 4                  # CPU, the code paths only
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit import card_slug, command_line, software, write_document

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
    seed: int = 0,
):  # type: ignore[no-untyped-def]
    """A planted clip, made on a worker: frames the generator can reproduce."""
    from authoring.planted import planted_clip
    from authoring.tasks import worker_generator

    generator = worker_generator(loader, resources.device)
    clip, _ = planted_clip(generator, size, frames, interval=interval, rank=rank,
                           chunk_frames=chunk_frames, seed=seed)  # fmt: skip
    return clip


def worker_card(resources) -> str:  # type: ignore[no-untyped-def]
    """The card a worker computes on (``engines.devices.card_name``)."""
    from engines.devices import card_name

    return card_name(resources.device)


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
    parser.add_argument(
        "--scale", default=None, help="GPU counts, CPU slots without GPUs (default 1,2,4; "
        "1,2,4,8 with --catalogue)"
    )  # fmt: skip
    parser.add_argument("--tasks-per-gpu", type=int, default=2)
    parser.add_argument("--catalogue", action="store_true", help="mode 3 instead of 1 and 2")
    parser.add_argument("--levels", default=None, help="--catalogue: the command's default")
    parser.add_argument("--titles-per-worker", type=int, default=2, help="--catalogue")
    parser.add_argument("--segment-chunks", type=int, default=1, help="--catalogue")
    parser.add_argument("--segments-per-step", default="auto", help="--catalogue: N or auto")
    parser.add_argument("--work", type=Path, default=None, help="--catalogue: titles, ladders "
                        "(default: a temporary folder, removed)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.catalogue:
        catalogue(args)
    else:
        closing_and_scaling(args)


def closing_and_scaling(args: argparse.Namespace) -> None:
    """Modes 1 and 2 (module docstring)."""
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
        for k in (int(x) for x in (args.scale or "1,2,4").split(",")):
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


CPU_NOTE = (
    "CPU figures: Ray workers of one CPU slot each on a shared machine; they test the code "
    "paths and say nothing about GPU scaling"
)


def catalogue(args: argparse.Namespace) -> None:
    """Mode 3 (module docstring): a catalogue of planted titles on k workers, for each k."""
    import shutil

    import numpy as np
    from PIL import Image

    from authoring.catalog import CatalogSettings, TitleJob, build_titles
    from authoring.cluster import open_runner
    from authoring.levels import parse_levels
    from authoring.runner import TaskResources
    from authoring.segment_batch import batch_size_for, stack_batches
    from promptus.options import DEFAULT_LEVELS

    first, later = (int(x) for x in args.budgets.split(","))
    levels = tuple(parse_levels(args.levels or DEFAULT_LEVELS))
    loader = RandomGenerator(args.arch)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_catalogue_"))
    runner = open_runner("local", local_gpus=args.gpus, local_cpus=args.cpus)
    print(runner.description, flush=True)
    on_gpu = runner.gpus > 0
    units = runner.gpus or runner.cpus
    resources = TaskResources(gpus=1) if on_gpu else TaskResources(cpus=1)
    scale = [k for k in (int(x) for x in (args.scale or "1,2,4,8").split(",")) if k <= units]
    count = max(scale) * args.titles_per_worker
    try:
        clips, _ = run_tasks(runner, [
            (make_clip, (loader, args.size, args.frames, args.interval, args.rank,
                         args.chunk_frames, resources, seed), resources, f"clip {seed}")
            for seed in range(count)
        ], units)  # fmt: skip
        ((card,), _) = run_tasks(runner, [(worker_card, (resources,), resources, "card")], 1)
    finally:
        runner.close()
    sources = []
    for seed, clip in enumerate(clips):  # each title a folder of PNG frames, as an operator's
        folder = work / "titles" / f"t{seed:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(clip):
            Image.fromarray(frame).save(folder / f"{index:04d}.png")
        sources.append(folder)
    segments_per_step = (
        args.segments_per_step if args.segments_per_step == "auto" else int(args.segments_per_step)
    )
    settings = CatalogSettings(
        levels=levels, options=fixed_budget_options(first, later), size=args.size, fps=FPS,
        chunk_seconds=args.chunk_frames / FPS,
        segment_seconds=args.segment_chunks * args.chunk_frames / FPS,
        segments_per_step=segments_per_step, shared_frames=True,
    )  # fmt: skip
    rows: list[dict] = []
    try:
        for k in scale:
            runner = open_runner(
                "local", local_gpus=k if on_gpu else 0, local_cpus=None if on_gpu else k
            )
            jobs = [TitleJob(f"t{i:02d}", sources[i], work / f"k{k}" / f"t{i:02d}")
                    for i in range(k * args.titles_per_worker)]  # fmt: skip
            try:
                started = time.perf_counter()
                reports = build_titles(jobs, settings, runner=runner, loader=loader,
                                       resources=resources, progress=False)  # fmt: skip
                wall = time.perf_counter() - started
            finally:
                runner.close()
            failed = [r.error for r in reports if not r.ok]
            if failed:
                raise RuntimeError(f"k={k}: {failed}")
            manifests = [r.manifest for r in reports if r.manifest is not None]
            keys = [(lv.rank, lv.interval) for r in reports for lv in levels
                    for _ in range(r.segments // len(levels))]  # fmt: skip
            video_s = len(jobs) * args.frames / FPS
            psnrs = [c.psnr for m in manifests for lv in m.levels for c in lv.chunks
                     if c.psnr is not None]  # fmt: skip
            rows.append({
                "card": card, "gpus": k if on_gpu else 0, "workers": k, "titles": len(jobs),
                "segments": sum(r.segments for r in reports),
                "batches": len(stack_batches(keys, lambda key: key, batch_size_for(segments_per_step))),
                "segments_per_step": segments_per_step,
                "video_seconds": video_s, "wall_seconds": wall,
                "titles_per_hour": len(jobs) / wall * 3600,
                "video_seconds_per_wall_second": video_s / wall,
                "gpu_s_per_video_s": k * wall / video_s,
                "task_s_per_video_s": sum(r.task_seconds for r in reports) / video_s,
                "mean_psnr": float(np.mean(psnrs)) if psnrs else None,
                "load_average_1min": os.getloadavg()[0],  # the machine's, as the run ended
            })  # fmt: skip
            print(f"k={k}: {len(jobs)} titles in {wall:.1f} s", flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    base = rows[0]["titles_per_hour"] / rows[0]["workers"]
    for row in rows:
        row["efficiency"] = row["titles_per_hour"] / (row["workers"] * base)

    print(f"\ncard: {card}; {args.titles_per_worker} planted titles per worker of {args.frames} "
          f"frames {args.size}x{args.size} at {FPS:g} fps, levels "
          f"{','.join(lv.name for lv in levels)}, chunk {args.chunk_frames} frames, segments of "
          f"{args.segment_chunks} chunk(s), budgets {first}/{later}, frames from shared storage")  # fmt: skip
    unit = "GPU" if on_gpu else "worker"
    print(f"\n| card | {unit}s | titles | segments | batches | wall s | titles/h | "
          f"{unit}-s per video-s | task-s per video-s | PSNR dB | efficiency |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        psnr = "n/a" if r["mean_psnr"] is None else f"{r['mean_psnr']:.2f}"
        print(f"| {card} | {r['workers']} | {r['titles']} | {r['segments']} | {r['batches']} | "
              f"{r['wall_seconds']:.1f} | {r['titles_per_hour']:.1f} | "
              f"{r['gpu_s_per_video_s']:.1f} | {r['task_s_per_video_s']:.1f} | {psnr} | "
              f"{r['efficiency']:.1%} |")  # fmt: skip
    document = {
        "what": "catalogue throughput: promptus catalog's path (build_titles, stacked "
        "fit_segments_task batches) on a local Ray cluster of k workers",
        **({} if on_gpu else {"note": CPU_NOTE}),
        "command": command_line(), "software": software(), "card": card,
        "host": platform.node(), "arch": args.arch, "size": args.size,
        "frames_per_title": args.frames, "fps": FPS, "chunk_frames": args.chunk_frames,
        "segment_chunks": args.segment_chunks, "levels": [lv.name for lv in levels],
        "budgets": [first, later], "titles_per_worker": args.titles_per_worker,
        "frames_from": "shared storage: <ladder>/.fit/frames.npy mapped by each task "
        "(authoring.tasks.FramesFile), not the object store",
        "gpu_s_per_video_s": "workers x wall seconds / video seconds fitted",
        "rows": rows,
    }  # fmt: skip
    slug = card_slug(card) if on_gpu else "cpu"
    write_document(args.out or OUT_DIR / f"cluster_catalogue_{slug}_{args.arch}.json", document)


if __name__ == "__main__":
    main()
