"""Real-time generation at the hardware's limit: every backend variant, FPS and error against fp32.

    python scripts/bench_realtime.py                       # SD-Turbo architecture, seeded weights, 512x512
    python scripts/bench_realtime.py --variants fp16-graph fast-fp16 --budget-s 300

For each variant and batch: FPS, ms per batch, achieved TFLOP/s (945 GFLOP a frame: UNet 804 +
TAESD decoder 141), the fraction of the card's ceiling, and the difference from the fp32 eager
reference on the same random inputs (x0 max |diff|, frames mean/max |diff| in grey levels,
PSNR). Times ``generate_group`` (noise mix -> uint8 frames on the device) back to back, as
the daemon's generation loop runs it, plus ``stream``: a 60-frame chunk with the copy to host.
Compiled variants also record the compile time, and a second process measures the warm start
from the persistent compile cache. Writes JSON (one row per variant and batch) as it goes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_engines import (
    STREAM_CHUNK_FRAMES,
    STREAM_INTERVAL,
    build_networks,
    stream_chunk,
)
from benchkit import card_slug, command_line, software, write_document
from tqdm import tqdm

from engines.backends import backend_options, make_backend
from engines.devices import card_name
from engines.generator import Generator
from engines.psnr import frames_psnr_db
from engines.variants import VARIANTS
from prompts.stream_model import CONTEXT_SHAPE, PREV_LATENT_WEIGHT

GFLOP_PER_FRAME = 945.0  # UNet 804 + TAESD decoder 141 at 512x512 (issue 9)
PEAK_DENSE_TFLOPS = 790.0  # measured 8192^3 bf16 matmul on these H100/H200 cards (device KINDS.md)
MIN_SECONDS = 1.5  # timed span per measurement
WARMUP_RUNS = 3
COMPILE_COST_S = 90.0  # budget guard per compiled variant: measured 61 s cold on the H200 (warm-start probe 86 s)

VARIANTS_SPEC: dict[str, dict] = {
    # name: engines.backends.backend_options arguments; "compiled" ones run only --compiled-batches (a compile per shape)
    "fp32-eager": dict(kind="torch", dtype=torch.float32),
    "fp16-eager": dict(kind="torch", dtype=torch.float16),
    "fp16-graph": dict(kind="torch", dtype=torch.float16, channels_last=True, cuda_graph=True),
    "fast-fp16-nocompile": dict(kind="fast", dtype=torch.float16, compile_mode="none"),
    "fast-fp16": dict(kind="fast", dtype=torch.float16),
    "fast-fp16-fp8": dict(kind="fast", dtype=torch.float16, fp8_linear=True),
    "fast-bf16": dict(kind="fast", dtype=torch.bfloat16),
    "fast-fp16-max-autotune": dict(
        kind="fast", dtype=torch.float16, compile_mode="max-autotune-no-cudagraphs"
    ),
    "fast-fp16-b20": dict(
        kind="fast", dtype=torch.float16, batches=[20]
    ),  # two keyframe intervals a batch
    "fast-fp16-cudnn-attn": dict(
        kind="fast", dtype=torch.float16, attention="cudnn"
    ),  # cuDNN SDPA first
}
# GPU kernel names -> what they compute, for --profile (first match wins)
KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "attention", "sdpa", "attn")),
    ("convolution", ("conv", "fprop", "dgrad", "implicit", "winograd")),
    ("matmul", ("gemm", "cutlass", "nvjet", "_mm_", "matmul", "triton_tem")),  # nvjet: cuBLASLt
    ("fused pointwise / norm (Triton)", ("triton_",)),
    ("copy / layout", ("copy", "memcpy", "memset", "transpose", "nchw", "nhwc", "elementwise")),
)
PROFILE_GROUPS = 5
DEFAULT_VARIANTS = ["fp32-eager", "fp16-graph", "fast-fp16-nocompile", "fast-fp16", "fast-fp16-fp8"]


def is_compiled(name: str) -> bool:
    spec = VARIANTS_SPEC.get(name, {"kind": "probe"})
    return spec["kind"] == "fast" and spec.get("compile_mode") != "none"


def make_inputs(
    batch: int, size: int, seed: int = 7
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """prev latent, noise [1,4,h,w] and context [B,77,1024], the same for every variant."""
    generator = torch.Generator().manual_seed(seed)
    h = size // 8
    prev = torch.randn(1, 4, h, h, generator=generator)
    noise = torch.randn(1, 4, h, h, generator=generator)
    context = torch.randn(batch, *CONTEXT_SHAPE, generator=generator)
    return prev.cuda(), noise.cuda(), context.cuda()


def time_groups(backend, prev, noise, context) -> float:
    """Seconds per ``generate_group`` call, back to back (the GPU queue never drains in between)."""
    for _ in range(WARMUP_RUNS):
        backend.generate_group(prev, noise, PREV_LATENT_WEIGHT, context)
    torch.cuda.synchronize()
    runs, started = 0, time.perf_counter()
    while True:
        for _ in range(5):
            backend.generate_group(prev, noise, PREV_LATENT_WEIGHT, context)
        runs += 5
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS:
            return elapsed / runs


def time_stream(backend, ident: str, generator_name: str, size: int) -> float:
    """Frames per second of ``decode_chunk`` (6 groups of 10, frames copied to host)."""
    generator = Generator(
        variant=VARIANTS[generator_name], generator_id=ident, backend=backend, encoder=None
    )
    stream = generator.open_stream(
        width=size,
        height=size,
        init_latent=np.zeros((1, 4, size // 8, size // 8), dtype=np.float32),
    )
    chunk = stream_chunk(ident)
    for _ in range(2):
        stream.decode_chunk(chunk)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < MIN_SECONDS:
        stream.decode_chunk(chunk)
        runs += 1
    return STREAM_CHUNK_FRAMES * runs / (time.perf_counter() - started)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    return next(
        (kind for kind, marks in KERNEL_KINDS if any(mark in lowered for mark in marks)), "other"
    )


def profile_kernels(backend, prev, noise, context) -> dict:
    """GPU time per kind of kernel over ``PROFILE_GROUPS`` groups (CUPTI sees kernels inside CUDA graphs)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILE_GROUPS):
            backend.generate_group(prev, noise, PREV_LATENT_WEIGHT, context)
        torch.cuda.synchronize()
    wall_ms = 1000 * (time.perf_counter() - started) / PROFILE_GROUPS
    kernels: dict[str, float] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernels[event.name] = (
                kernels.get(event.name, 0.0) + event.time_range.elapsed_us() / 1000 / PROFILE_GROUPS
            )
    kinds: dict[str, float] = {}
    for name, ms in kernels.items():
        kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + ms
    top = sorted(kernels.items(), key=lambda item: -item[1])[:12]
    return {
        "wall_ms_per_group": wall_ms,
        "kernel_ms_per_group": sum(kernels.values()),
        "kinds_ms": dict(sorted(kinds.items(), key=lambda item: -item[1])),
        "top_kernels_ms": [[name[:120], ms] for name, ms in top],
    }


def print_profile(name: str, profile: dict) -> None:
    total = profile["kernel_ms_per_group"] or 1.0
    print(
        f"\n{name}: {profile['wall_ms_per_group']:.2f} ms per group (profiled), "
        f"{profile['kernel_ms_per_group']:.2f} ms in kernels",
        flush=True,
    )
    for kind, ms in profile["kinds_ms"].items():
        print(f"  {kind:32s} {ms:7.2f} ms  {100 * ms / total:5.1f} %")
    for kernel, ms in profile["top_kernels_ms"]:
        print(f"    {ms:7.3f} ms  {kernel}")


def compare(x0: torch.Tensor, frames: torch.Tensor, reference: dict | None) -> dict:
    if reference is None:
        return {}
    frames_np = frames.cpu().numpy()
    diff = np.abs(frames_np.astype(np.int16) - reference["frames"].astype(np.int16))
    x0_diff = (x0.float().cpu() - reference["x0"]).abs()
    return {
        "x0_max_abs_diff": float(x0_diff.max()),
        "x0_mean_abs_diff": float(x0_diff.mean()),
        "x0_ref_mean_abs": float(reference["x0"].abs().mean()),
        "frames_mean_abs_diff": float(diff.mean()),
        "frames_max_abs_diff": int(diff.max()),
        "psnr_vs_fp32_db": frames_psnr_db(frames_np, reference["frames"]),
    }


def measure_variant(
    name: str, unet, decoder, ident: str, args, reference: dict | None
) -> list[dict]:
    spec = dict(VARIANTS_SPEC[name])
    batches = spec.pop("batches", None) or (
        args.compiled_batches if is_compiled(name) else args.batches
    )
    options = dataclasses.replace(
        backend_options(device="cuda", compile_cache_dir=args.cache_dir, **spec), cache_key=ident
    )
    built = time.perf_counter()
    backend = make_backend(copy.deepcopy(unet), copy.deepcopy(decoder), options)
    rows = []
    for batch in batches:
        prev, noise, context = make_inputs(batch, args.size)
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        _, x0, frames = backend.generate_group(
            prev, noise, PREV_LATENT_WEIGHT, context
        )  # compile + capture
        torch.cuda.synchronize()
        first_call_s = time.perf_counter() - started
        seconds = time_groups(backend, prev, noise, context)
        fps = batch / seconds
        row = {
            "variant": name,
            "mode": "generate_group",
            "batch": batch,
            "fps": fps,
            "ms_per_batch": 1000 * seconds,
            "tflops": fps * GFLOP_PER_FRAME / 1000,
            "fraction_of_ceiling": fps * GFLOP_PER_FRAME / 1000 / PEAK_DENSE_TFLOPS,
            "first_call_s": first_call_s,
            "card": args.card,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        }
        if batch == args.reference_batch:
            row.update(compare(x0, frames, reference))
            if args.profile:
                row["profile"] = profile_kernels(backend, prev, noise, context)
                print_profile(name, row["profile"])
        if getattr(backend, "fp8_linears", 0):
            row["fp8_linears"] = backend.fp8_linears
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.stream and STREAM_INTERVAL in batches:
        fps = time_stream(backend, ident, args.generator, args.size)
        rows.append(
            {
                "variant": name,
                "mode": "stream",
                "batch": STREAM_INTERVAL,
                "fps": fps,
                "ms_per_batch": 1000 * STREAM_INTERVAL / fps,
                "tflops": fps * GFLOP_PER_FRAME / 1000,
                "fraction_of_ceiling": fps * GFLOP_PER_FRAME / 1000 / PEAK_DENSE_TFLOPS,
                "card": args.card,
                "variant_setup_s": time.perf_counter() - built,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def reference_outputs(unet, decoder, ident: str, args) -> tuple[dict, list[dict]]:
    """fp32 eager (TF32 off) outputs on the reference inputs, plus its timing row."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    backend = make_backend(
        copy.deepcopy(unet),
        copy.deepcopy(decoder),
        backend_options(device="cuda", **VARIANTS_SPEC["fp32-eager"]),
    )
    prev, noise, context = make_inputs(args.reference_batch, args.size)
    _, x0, frames = backend.generate_group(prev, noise, PREV_LATENT_WEIGHT, context)
    reference = {"x0": x0.float().cpu(), "frames": frames.cpu().numpy()}
    seconds = time_groups(backend, prev, noise, context)
    fps = args.reference_batch / seconds
    row = {
        "variant": "fp32-eager",
        "mode": "generate_group",
        "batch": args.reference_batch,
        "fps": fps,
        "ms_per_batch": 1000 * seconds,
        "tflops": fps * GFLOP_PER_FRAME / 1000,
        "fraction_of_ceiling": fps * GFLOP_PER_FRAME / 1000 / PEAK_DENSE_TFLOPS,
        "card": args.card,
        "x0_ref_mean_abs": float(reference["x0"].abs().mean()),
    }
    print(json.dumps(row), flush=True)
    del backend
    torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return reference, [row]


def warm_start_probe(args) -> dict:
    """A fresh process builds fast-fp16 from the now-filled compile cache: its time to first frames."""
    command = [
        sys.executable,
        __file__,
        "--variants",
        "fast-fp16",
        "--compiled-batches",
        *map(str, args.compiled_batches[:1]),
        "--no-reference",
        "--no-stream",
        "--cache-dir",
        args.cache_dir,
        "--json",
        args.probe_json,
        "--size",
        str(args.size),
        "--budget-s",
        "600",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    total = time.perf_counter() - started
    if result.returncode != 0:
        return {
            "variant": "fast-fp16",
            "mode": "warm-start",
            "error": result.stderr[-2000:],
            "card": args.card,
        }
    rows = json.loads(Path(args.probe_json).read_text())["rows"]
    return {
        "variant": "fast-fp16",
        "mode": "warm-start",
        "batch": rows[0]["batch"],
        "fps": rows[0]["fps"],
        "first_call_s": rows[0]["first_call_s"],
        "process_s": total,
        "card": args.card,
    }


def print_table(rows: list[dict]) -> None:
    print(
        f"\ncard: {rows[0]['card'] if rows else '?'}; ceiling {PEAK_DENSE_TFLOPS:.0f} TFLOP/s = "
        f"{1000 * PEAK_DENSE_TFLOPS / GFLOP_PER_FRAME:.0f} fps at {GFLOP_PER_FRAME:.0f} GFLOP/frame"
    )
    print(
        f"{'variant':24s} {'mode':15s} {'batch':>5s} {'fps':>7s} {'ms/batch':>9s} {'TFLOP/s':>8s} {'ceil':>5s} "
        f"{'1st call s':>10s} {'x0 maxdiff':>10s} {'px mean':>7s} {'px max':>6s} {'PSNR':>6s}"
    )
    for row in rows:
        if "fps" not in row:
            print(f"{row['variant']:24s} {row['mode']:15s} ERROR {row.get('error', '')[:200]}")
            continue

        def cell(key, fmt, width, row=row):
            return format(row[key], fmt).rjust(width) if key in row else "-".rjust(width)

        print(
            f"{row['variant']:24s} {row['mode']:15s} {row.get('batch', 0):5d} {row['fps']:7.1f} "
            f"{cell('ms_per_batch', '.2f', 9)} {cell('tflops', '.0f', 8)} {cell('fraction_of_ceiling', '.2f', 5)} "
            f"{cell('first_call_s', '.1f', 10)} {cell('x0_max_abs_diff', '.3g', 10)} "
            f"{cell('frames_mean_abs_diff', '.2f', 7)} {cell('frames_max_abs_diff', 'd', 6)} "
            f"{cell('psnr_vs_fp32_db', '.1f', 6)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", choices=("sd-turbo", "tiny"), default="sd-turbo")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--taesd", default=None)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS_SPEC), default=DEFAULT_VARIANTS
    )
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 10, 32], help="for uncompiled variants"
    )
    parser.add_argument(
        "--compiled-batches", type=int, nargs="+", default=[10], help="a compile per batch size"
    )
    parser.add_argument("--reference-batch", type=int, default=10)
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--no-stream", dest="stream", action="store_false")
    parser.add_argument(
        "--profile", action="store_true", help="GPU time per kind of kernel at the reference batch"
    )
    parser.add_argument(
        "--warm-start", action="store_true", help="time a second process on the compile cache"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="compile cache (default: a fresh temporary folder)"
    )
    parser.add_argument(
        "--budget-s", type=float, default=1e9, help="skip variants that would end past this"
    )
    parser.add_argument(
        "--json", default=None, help="default docs/benchmarks/realtime_<generator>_<card>.json"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="promptus-inductor-")
    args.probe_json = str(Path(args.cache_dir) / "warm_start.json")
    args.card = card_name("cuda")
    torch.backends.cudnn.benchmark = True
    unet, decoder, ident = build_networks(args)
    print(
        f"built {args.generator} ({ident}) in {time.perf_counter() - started:.1f} s on {args.card}",
        file=sys.stderr,
    )
    reference, rows = (None, [])
    if args.reference:
        reference, rows = reference_outputs(unet, decoder, ident, args)
    document = {
        "card": args.card,
        "generator": args.generator,
        "generator_id": ident,
        "size": args.size,
        **software(),
        "gflop_per_frame": GFLOP_PER_FRAME,
        "peak_dense_tflops": PEAK_DENSE_TFLOPS,
        "command": command_line(argv),
        "rows": rows,
    }
    out = Path(
        args.json or f"docs/benchmarks/realtime_{args.generator}_{card_slug(args.card)}.json"
    )
    todo = [name for name in args.variants if name != "fp32-eager"]
    if args.warm_start:  # right after the first compiled variant has filled the cache
        first_compiled = next(
            (i for i, name in enumerate(todo) if is_compiled(name)), len(todo) - 1
        )
        todo.insert(first_compiled + 1, "warm-start")
    for name in tqdm(todo, desc="variants", unit="variant", file=sys.stderr):
        cost = COMPILE_COST_S if name == "warm-start" or is_compiled(name) else 20.0
        if time.perf_counter() - started + cost > args.budget_s:
            rows.append(
                {"variant": name, "mode": "skipped", "error": "time budget", "card": args.card}
            )
            continue
        try:
            rows.extend(
                [warm_start_probe(args)]
                if name == "warm-start"
                else measure_variant(name, unet, decoder, ident, args, reference)
            )
        except Exception as error:  # one variant failing must not lose the others' numbers
            rows.append(
                {
                    "variant": name,
                    "mode": "error",
                    "error": f"{type(error).__name__}: {error}"[:2000],
                    "card": args.card,
                }
            )
            print(f"{name} failed: {rows[-1]['error']}", file=sys.stderr, flush=True)
        torch.cuda.empty_cache()
        write_document(out, document, quiet=True)  # after every variant: a crash keeps the rest
    write_document(out, document, quiet=True)
    print_table(rows)
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
