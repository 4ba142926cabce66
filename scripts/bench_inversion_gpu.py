"""GPU-seconds per video-second of inversion, SD-Turbo's architecture with random weights.

Time per fitting iteration does not depend on weight values, so the UNet and TAESD decoder are
built from the shipped configs with torch's random initialisation. Measured: one batched
iteration over an interval of N frames (pixel loss: UNet + decoder forward and backward; latent
loss: UNet only) and one batch-1 iteration (the original release's unbatched step). From those:
GPU-seconds per second of 30 fps video for the ``reference`` and ``fast`` presets (budgets as
upper bounds; plateau stops and quality targets only shorten ``fast``) and for the original
unbatched schedule. Prints a table and writes ``docs/benchmarks/inversion_gpu_<arch>_<dtype>.json``.

    python scripts/bench_inversion_gpu.py                # on a CUDA machine
    python scripts/bench_inversion_gpu.py --arch tiny --size 64 --device cpu   # smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from authoring.fit import FitState, LevelConfig, LevelFitter
from authoring.losses import FitLoss, LossWeights, perceptual_term
from authoring.presets import PRESETS
from engines.backends import BackendOptions, make_backend
from engines.generator import Generator
from engines.model_configs import TAESD, TINY_AUTOENCODER, TINY_UNET
from engines.sdturbo import build_unet
from engines.taesd import build_autoencoder_tiny
from engines.variants import VARIANTS

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
FPS = 30.0
ORIGINAL_PASSES = 12  # the release's step list per iteration: N=10 frames + the worst frame twice


def random_generator(arch: str, device: str, dtype: torch.dtype) -> Generator:
    """SD-Turbo (or tiny) architecture, random weights, TAESD-shaped decoder."""
    if arch == "sd-turbo":
        unet, autoencoder, variant = (
            build_unet(),
            build_autoencoder_tiny(TAESD),
            VARIANTS["sd-turbo"],
        )
    else:
        unet, autoencoder, variant = (
            build_unet(TINY_UNET),
            build_autoencoder_tiny(TINY_AUTOENCODER),
            VARIANTS["tiny"],
        )
    backend = make_backend(unet, autoencoder.decoder, BackendOptions(device=device, dtype=dtype))
    return Generator(
        variant=variant, generator_id=f"{arch}:random", backend=backend, encoder=autoencoder.encoder
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_iterations(
    fitter: LevelFitter, state: FitState, span_index: int, latent: bool, repeats: int, device: str
) -> float:
    """Seconds per optimiser iteration over one keyframe's span."""
    span = fitter.spans[span_index]
    problem = fitter._problem(span, state)
    u, v = fitter._initial_factors(span, state)
    fitter._optimise(problem, u, v, 0.03, 3, latent, first=False)  # warm-up: kernels, allocator
    sync(device)
    started = time.perf_counter()
    *_, used = fitter._optimise(problem, u, v, 0.03, repeats, latent, first=False)
    sync(device)
    return (time.perf_counter() - started) / used


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=("sd-turbo", "tiny"), default="sd-turbo")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    gen = random_generator(args.arch, args.device, dtype)
    n = args.interval
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2 * n + 1, args.size, args.size, 3), dtype=np.uint8)
    latent_targets = rng.normal(size=(len(frames), 4, args.size // 8, args.size // 8)).astype(
        np.float32
    )
    init = latent_targets[:1]
    config = LevelConfig(rank=args.rank, interval=n, chunk_frames=2 * n)
    loss = FitLoss(perceptual_term("ms-ssim"), LossWeights())
    preset = dataclasses.replace(
        PRESETS["fast"].with_budgets(2, 2), stop_after_plateaus=0
    )  # time, never stop
    fitter = LevelFitter(gen, frames, init, config, preset, loss, latent_targets)
    first = fitter.fit_span(fitter.spans[0], FitState())  # a real predecessor for keyframe 1
    state = FitState(
        [first.keyframe], [first.stats], first.factors, first.group_input, first.last_x0
    )
    pixel = time_iterations(fitter, state, 1, False, args.repeats, args.device)
    latent = time_iterations(fitter, state, 1, True, args.repeats, args.device)
    single = LevelFitter(
        gen, frames[:1], init, LevelConfig(rank=args.rank, interval=1, chunk_frames=1), preset, loss
    )
    batch1 = time_iterations(single, FitState(), 0, False, args.repeats, args.device)

    keyframes_per_second = FPS / n
    rows = {}
    for name in ("reference", "fast"):
        p = PRESETS[name]
        lat = round(p.later_iterations * p.latent_fraction)
        per_keyframe = lat * latent + (p.later_iterations - lat) * pixel
        rows[f"{name} (ours, batched)"] = {
            "iterations_per_keyframe": p.later_iterations,
            "latent_iterations": lat,
            "gpu_s_per_keyframe": per_keyframe,
            "gpu_s_per_video_s": per_keyframe * keyframes_per_second,
        }
    original = PRESETS["reference"].later_iterations * ORIGINAL_PASSES * batch1
    rows["original release (unbatched)"] = {
        "iterations_per_keyframe": PRESETS["reference"].later_iterations,
        "latent_iterations": 0,
        "gpu_s_per_keyframe": original,
        "gpu_s_per_video_s": original * keyframes_per_second,
    }
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"device {device}, {args.arch} random weights, {args.size}x{args.size}, {args.dtype}, rank {args.rank}, interval {n}"
    )
    print(
        f"per iteration: pixel batch {n} {pixel * 1000:.1f} ms, latent batch {n} {latent * 1000:.1f} ms, pixel batch 1 {batch1 * 1000:.1f} ms"
    )
    print(
        "| schedule | iterations / keyframe | of which latent | GPU-s / keyframe | GPU-s / video-s |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['iterations_per_keyframe']} | {row['latent_iterations']} | {row['gpu_s_per_keyframe']:.1f} | {row['gpu_s_per_video_s']:.1f} |"
        )
    document = {
        "device": device,
        "settings": vars(args),
        "ms_per_iteration": {
            "pixel_batch": pixel * 1000,
            "latent_batch": latent * 1000,
            "pixel_batch1": batch1 * 1000,
        },
        "rows": rows,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"inversion_gpu_{args.arch}_{args.dtype}.json").write_text(
        json.dumps(document, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
