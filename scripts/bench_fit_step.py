"""Where a fitting step's milliseconds go, and what it costs per frame as the batch grows.

A *step* of the batched engine (``authoring.batched``) is the forward of the UNet and decoder
over a batch of frames, the loss, the backward into the prompt factors, Adam and the device-side
bookkeeping. This script times one step for every (segments stacked S, frames scored per
segment k) shape and every runtime (eager, CUDA graph, torch.compile + CUDA graph), prints
milliseconds per step and per frame, and, with ``--profile``, the kernels and the host's share
of an eager step. ``--diagnose`` records what breaks CUDA-graph capture: host synchronisations
inside a step (``torch.cuda.set_sync_debug_mode``) and a capture on ``torch.cuda.graph``'s own
stream after a side-stream warm-up (the engine's capture before the fix), next to the engine's
capture and its equality with eager steps.

SD-Turbo's architecture with seeded random weights at 512x512 in bf16 on CUDA (speed does not
depend on the values); the tiny generator on the CPU:

    python scripts/bench_fit_step.py --device cuda --diagnose --profile \\
        --out docs/benchmarks/fit_step_h100.json
    python scripts/bench_fit_step.py --arch tiny --device cpu --size 64 --frames 11 \\
        --shapes 1x1,1x10,3x3 --runtimes eager
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inversion_gpu import (  # noqa: E402  (a sibling script)
    Variant,
    card_name,
    fitter_for,
    plant,
    random_generator,
    start_state,
    step_ms,
    sync,
)

from authoring.batched import PhaseSchedule, StepOptions, stack_problems  # noqa: E402
from authoring.presets import PRESETS  # noqa: E402

RUNTIMES = {
    "eager": StepOptions(cuda_graph=False),
    "graph": StepOptions(cuda_graph=True),
    "compile+graph": StepOptions(cuda_graph=True, compile_mode="default"),
}


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``"1x1,1x10,4x3"``: (segments stacked, frames scored per segment); k=1 on span 0."""
    shapes = []
    for item in text.split(","):
        stack, frames = item.lower().split("x")
        shapes.append((int(stack), int(frames)))
    return shapes


def timing_args(stack: int, frames: int, interval: int) -> dict[str, Any]:
    """``step_ms`` keywords of a shape: one frame is keyframe 0's problem (span 0, n=1)."""
    if frames == 1:
        return {"stack": stack, "span_index": 0}
    return {"stack": stack, "frames_per_step": 0 if frames >= interval else frames}


def peak_memory_gib(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def problem_for(gen: Any, planted: Any, args: argparse.Namespace, steps: StepOptions) -> Any:
    """A fitter, its keyframe-1 problem and starting factors (one stack)."""
    fitter = fitter_for(gen, planted, Variant("diag", PRESETS["reference"], "", steps), args)
    state = start_state(fitter, planted)
    span = fitter.spans[1]
    problem = stack_problems([fitter.problem(span, state)])
    u0, v0 = (
        torch.from_numpy(a).to(fitter.device)[None] for a in fitter.initial_factors(span, state)
    )
    return fitter, problem, u0, v0


def schedule(budget: int) -> PhaseSchedule:
    return PhaseSchedule(
        budget=budget, lr=[0.01], min_lr=0.001, patience=budget, improvement=0.0,
        stop_after_plateaus=0, worst_frame_extra=2.0, frames_per_step=0,
    )  # fmt: skip


def diagnose(gen: Any, planted: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Host syncs inside an eager step; the old capture; the engine's capture vs eager."""
    found: dict[str, Any] = {}
    fitter, problem, u0, v0 = problem_for(gen, planted, args, StepOptions(cuda_graph=False))
    fitter.optimiser.run(problem, u0, v0, schedule(2), False)  # builds the step's buffers
    (compiled,) = fitter.optimiser._graphs.values()
    sync(args.device)
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled.step()
        sync(args.device)
    torch.cuda.set_sync_debug_mode(0)
    found["host_syncs_in_step"] = [f"{w.filename}:{w.lineno}: {w.message}"[:300] for w in caught]
    # The engine's capture before the fix: warm-up on a side stream, capture on the graph's own.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            compiled.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            compiled.step()
        found["capture_on_graph_stream"] = "ok"
    except Exception as error:  # noqa: BLE001 - recorded, the point of the diagnosis
        found["capture_on_graph_stream"] = f"{type(error).__name__}: {str(error)[:400]}"
        graph.reset()
    del graph
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    # The engine's capture (warm-up and capture on one stream), and 20 steps against eager ones.
    results = {}
    for name, steps in (
        ("eager", StepOptions(cuda_graph=False)),
        ("graph", StepOptions(cuda_graph=True)),
    ):
        fitter, problem, u0, v0 = problem_for(gen, planted, args, steps)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fitter.optimiser.run(problem, u0, v0, schedule(20), False)
        (compiled,) = fitter.optimiser._graphs.values()
        results[name] = result
        if name == "graph":
            found["engine_capture"] = "ok" if compiled.graph is not None else "fell back to eager"
            found["engine_capture_warnings"] = [str(w.message)[:300] for w in caught]
        del fitter, compiled
        gc.collect()
    eager, graph_result = results["eager"], results["graph"]
    found["graph_vs_eager_max_abs_u"] = float((eager.u - graph_result.u).abs().max())
    found["graph_vs_eager_max_abs_v"] = float((eager.v - graph_result.v).abs().max())
    found["graph_vs_eager_best_loss"] = [eager.loss[0], graph_result.loss[0]]
    return found


def profile_step(gen: Any, planted: Any, args: argparse.Namespace, stack: int, frames: int) -> dict:
    """An eager step under torch.profiler: host time, GPU busy time, the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    fitter, problem, u0, v0 = problem_for(gen, planted, args, StepOptions(cuda_graph=False))
    problem = stack_problems([problem] * stack) if stack > 1 else problem
    u0, v0 = u0.repeat(stack, 1, 1), v0.repeat(stack, 1, 1)
    sched = dataclasses.replace(
        schedule(3), lr=[0.01] * stack, frames_per_step=0 if frames >= args.interval else frames
    )
    fitter.optimiser.run(problem, u0, v0, sched, False)
    (compiled,) = fitter.optimiser._graphs.values()
    sync(args.device)
    repeats = 3
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        started = time.perf_counter()
        for _ in range(repeats):
            compiled.step()
        sync(args.device)
        wall = (time.perf_counter() - started) / repeats
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type.name == "CUDA"]
    gpu_us = sum(e.self_device_time_total for e in kernels) / repeats
    top = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:15]
    launches = sum(e.count for e in kernels) / repeats
    return {
        "shape": f"{stack}x{frames}", "wall_ms": round(wall * 1000, 2),
        "gpu_busy_ms": round(gpu_us / 1000, 2), "kernel_launches": round(launches),
        "top_kernels": [
            {"name": e.key[:90], "ms": round(e.self_device_time_total / repeats / 1000, 3),
             "calls": e.count // repeats}
            for e in top
        ],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=("sd-turbo", "tiny"), default="sd-turbo")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--frames", type=int, default=11, help="planted clip length")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--drift", type=float, default=0.8)
    parser.add_argument("--context-l1", type=float, default=0.0)
    parser.add_argument(
        "--shapes",
        default="1x1,4x1,16x1,1x3,1x10,4x3,8x3,3x10",
        help="SxK: S segments stacked, K frames each per step (K=1: keyframe 0)",
    )
    parser.add_argument("--runtimes", default="eager,graph", help=f"of {', '.join(RUNTIMES)}")
    parser.add_argument(
        "--compile-shapes",
        default="1x10,4x3",
        help="shapes also timed with compile+graph when that runtime is asked",
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--diagnose", action="store_true")
    parser.add_argument("--profile", default="", help="shapes to profile eagerly, e.g. 1x10,4x3")
    parser.add_argument("--budget-s", type=float, default=1e9)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()  # fmt: skip
    begun = time.perf_counter()
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    dtype = torch.bfloat16 if cuda else torch.float32
    gen = random_generator(args.arch, args.device, dtype, seed=args.seed)
    planted = plant(gen, args)
    card = card_name(args.device)
    document: dict[str, Any] = {
        "card": card, "torch": torch.__version__, "arch": args.arch,
        "settings": {k: str(v) for k, v in vars(args).items()}, "rows": [],
    }  # fmt: skip

    def save() -> None:
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(document, indent=1) + "\n")

    def guarded(what: str, job: Any) -> Any:
        if time.perf_counter() - begun > args.budget_s:
            document.setdefault("skipped", []).append(what)
            return None
        try:
            return job()
        except Exception as error:  # noqa: BLE001 - one failure must not lose the rest
            print(f"failed {what}: {type(error).__name__}: {error}", flush=True)
            document.setdefault("failed", {})[what] = traceback.format_exc()[-1500:]
            return None
        finally:
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()

    print(f"{card}: {args.arch}, {args.size}px, r{args.rank}n{args.interval}, {dtype}", flush=True)
    if args.diagnose and cuda:
        found = guarded("diagnose", lambda: diagnose(gen, planted, args))
        document["diagnosis"] = found
        print(json.dumps(found, indent=1), flush=True)
        save()
    compile_shapes = set(parse_shapes(args.compile_shapes))
    for runtime in args.runtimes.split(","):
        steps = RUNTIMES[runtime]
        for stack, frames in parse_shapes(args.shapes):
            if runtime == "compile+graph" and (stack, frames) not in compile_shapes:
                continue
            if not cuda and steps.cuda_graph:
                continue
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            extra = timing_args(stack, frames, args.interval)
            started = time.perf_counter()
            ms = guarded(f"{runtime} {stack}x{frames}",
                         lambda s=steps, e=extra: step_ms(gen, planted, args, s, repeats=args.repeats, **e))  # fmt: skip
            if ms is None:
                continue
            batch = stack * min(frames, args.interval)
            row = {
                "card": card, "runtime": runtime, "segments_per_step": stack,
                "frames_per_segment": frames, "batch_frames": batch,
                "ms_per_step": round(ms, 2), "ms_per_frame": round(ms / batch, 2),
                "ms_per_segment_step": round(ms / stack, 2),
                "setup_s": round(time.perf_counter() - started - ms * (args.repeats) / 1000, 1),
                "peak_gib": peak_memory_gib(args.device),
            }  # fmt: skip
            document["rows"].append(row)
            print(f"{runtime:14s} {stack:3d}x{frames:<3d} {ms:8.1f} ms/step "
                  f"{ms / batch:7.2f} ms/frame  peak {row['peak_gib']} GiB", flush=True)  # fmt: skip
            save()
    for shape in parse_shapes(args.profile) if args.profile and cuda else []:
        found = guarded(f"profile {shape}", lambda s=shape: profile_step(gen, planted, args, *s))
        if found is not None:
            document.setdefault("profiles", []).append(found)
            print(json.dumps(found, indent=1), flush=True)
            save()
    print("\n| runtime | S x k | batch | ms / step | ms / frame | ms / segment-step | peak GiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in document["rows"]:
        print(f"| {r['runtime']} | {r['segments_per_step']}x{r['frames_per_segment']} | "
              f"{r['batch_frames']} | {r['ms_per_step']} | {r['ms_per_frame']} | "
              f"{r['ms_per_segment_step']} | {r['peak_gib']} |")  # fmt: skip
    save()


if __name__ == "__main__":
    main()
