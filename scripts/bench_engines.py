"""Frames per second of one-step generation (UNet at t=999 + fp32 x0 + TAESD decode + uint8) per backend option.

    # GPU: SD-Turbo's real architecture with seeded random weights (speed does not depend on values)
    python scripts/bench_engines.py
    python scripts/bench_engines.py --weights sd_turbo.safetensors --taesd models/taesd
    # CPU: the tiny generator (or nano, with its shipped weights) at its native size
    python scripts/bench_engines.py --generator tiny --device cpu --options cpu-fp32 --batches 10
    taskset -c 0,1 python scripts/bench_engines.py --generator nano --device cpu --options cpu-fp32 --batches 10 --threads 2

Prints a table (with the card's name) and writes JSON under docs/benchmarks/.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchkit import card_slug, command_line, software, write_document
from tqdm import tqdm

from engines.backends import backend_options, make_backend
from engines.devices import card_name
from engines.generator import Generator
from engines.loaders import LOADERS, generator_id_of, random_networks
from engines.sdturbo import load_unet
from engines.taesd import load_taesd
from engines.variants import VARIANTS
from prompts.chunk import PromptChunk
from prompts.stream_model import CONTEXT_SHAPE
from prompts.testing import level_chunks

BENCH_SEED = (
    1234  # seed of the random SD-Turbo-architecture weights (engines.loaders.random_networks)
)
OPTIONS = {
    "cpu-fp32": dict(dtype=torch.float32),
    "fp16-eager": dict(dtype=torch.float16),
    "bf16-eager": dict(dtype=torch.bfloat16),
    "fp16-channels-last": dict(dtype=torch.float16, channels_last=True),
    "fp16-cuda-graph": dict(dtype=torch.float16, cuda_graph=True),
    "fp16-channels-last-cuda-graph": dict(dtype=torch.float16, channels_last=True, cuda_graph=True),
    "bf16-channels-last-cuda-graph": dict(
        dtype=torch.bfloat16, channels_last=True, cuda_graph=True
    ),
    "fp16-channels-last-compile": dict(
        dtype=torch.float16, channels_last=True, compile_mode="default"
    ),
    "fp16-channels-last-compile-cuda-graph": dict(
        dtype=torch.float16, channels_last=True, compile_mode="default", cuda_graph=True
    ),
}
GPU_OPTIONS = [
    name for name in OPTIONS if name != "cpu-fp32" and "compile" not in name
]  # compile: opt-in (minutes)
MIN_SECONDS = 2.0  # timed span per measurement
WARMUP_RUNS = 3
STREAM_CHUNK_FRAMES = 60  # frames per chunk in the stream measurement (2 s at 30 fps)
STREAM_INTERVAL = 10  # keyframe interval: 6 groups of 10 frames per chunk


def build_networks(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """The generator's UNet, decoder and id: sd-turbo's parts not given have random weights."""
    if args.generator != "sd-turbo":
        networks = LOADERS[args.generator](None, None)
    else:
        networks = random_networks("sd-turbo", BENCH_SEED, args.device)
        if args.weights:
            networks = dataclasses.replace(networks, unet=load_unet(args.weights))
        if args.taesd:
            taesd = load_taesd(args.taesd)
            networks = dataclasses.replace(networks, decoder=taesd.decoder, encoder=taesd.encoder)
    return networks.unet, networks.decoder, generator_id_of(args.generator, networks)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_runs(run, device: str) -> tuple[float, int]:
    for _ in range(WARMUP_RUNS):
        run()
    synchronize(device)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < MIN_SECONDS or runs < 3:
        run()
        runs += 1
        synchronize(device)  # per run: the stream path waits for frames anyway
    return time.perf_counter() - started, runs


def stream_chunk(generator_id: str, rank: int = 8) -> PromptChunk:
    """The first chunk of a level: ``STREAM_CHUNK_FRAMES`` frames, ``STREAM_INTERVAL`` apart."""
    return level_chunks(
        generator_id,
        frames=STREAM_CHUNK_FRAMES + 1,  # the keyframe at the chunk's end belongs to it
        interval=STREAM_INTERVAL,
        chunk_frames=STREAM_CHUNK_FRAMES,
        rank=rank,
    )[0]


def measure_option(name: str, unet, decoder, ident: str, args: argparse.Namespace) -> list[dict]:
    variant = VARIANTS[args.generator]
    settings = dict(OPTIONS[name])
    settings["channels_last"] = settings.get("channels_last", False) or variant.channels_last
    options = backend_options("torch", device=args.device, **settings)
    backend = make_backend(copy.deepcopy(unet), copy.deepcopy(decoder), options)
    rows = []
    latent_shape = variant.latent.shape(args.size, args.size)
    for batch in args.batches:
        latent = torch.randn(latent_shape, device=args.device).expand(batch, -1, -1, -1)
        context = torch.randn(batch, *CONTEXT_SHAPE, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        seconds, runs = time_runs(
            lambda latent=latent, context=context: backend.generate(latent, context), args.device
        )
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
        rows.append(
            {
                "option": name,
                "mode": "generate",
                "batch": batch,
                "fps": batch * runs / seconds,
                "ms_per_call": 1000 * seconds / runs,
                "peak_gib": peak,
            }
        )
    generator = Generator(
        variant=VARIANTS[args.generator], generator_id=ident, backend=backend, encoder=None
    )
    chunk = stream_chunk(ident)
    stream = generator.open_stream(
        width=args.size, height=args.size, init_latent=np.zeros(latent_shape, dtype=np.float32)
    )
    seconds, runs = time_runs(lambda: stream.decode_chunk(chunk), args.device)
    rows.append(
        {
            "option": name,
            "mode": "stream",
            "batch": STREAM_INTERVAL,
            "fps": STREAM_CHUNK_FRAMES * runs / seconds,
            "ms_per_call": 1000 * seconds / runs,
            "peak_gib": None,
        }
    )
    return rows


def print_table(rows: list[dict], card: str) -> None:
    print(f"\ncard: {card}")
    print(f"{'option':32s} {'mode':9s} {'batch':>5s} {'fps':>9s} {'ms/call':>9s} {'peak GiB':>9s}")
    for row in rows:
        peak = f"{row['peak_gib']:.1f}" if row["peak_gib"] is not None else "-"
        print(
            f"{row['option']:32s} {row['mode']:9s} {row['batch']:5d} {row['fps']:9.1f} {row['ms_per_call']:9.2f} {peak:>9s}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", choices=("sd-turbo", "tiny", "nano"), default="sd-turbo")
    parser.add_argument(
        "--weights", default=None, help="sd_turbo.safetensors or LDM checkpoint (default: seeded)"
    )
    parser.add_argument("--taesd", default=None, help="TAESD weights (default: seeded)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--size", type=int, default=None, help="pixels (default: the generator's native size)"
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 32])
    parser.add_argument("--options", nargs="+", choices=sorted(OPTIONS), default=None)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--json", default=None, help="output JSON (default docs/benchmarks/engines_<card>.json)"
    )
    args = parser.parse_args(argv)
    args.size = args.size or VARIANTS[args.generator].native_size[0]
    names = args.options or (GPU_OPTIONS if args.device.startswith("cuda") else ["cpu-fp32"])
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    unet, decoder, ident = build_networks(args)
    print(
        f"built {args.generator} ({ident}) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    rows = []
    for name in tqdm(names, desc="options", unit="option", file=sys.stderr):
        rows.extend(measure_option(name, unet, decoder, ident, args))
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()  # the option's copies are gone; free their blocks
    card = card_name(args.device)
    print_table(rows, card)
    slug = card_slug(card)
    out = Path(args.json or f"docs/benchmarks/engines_{args.generator}_{slug}.json")
    document = {
        "card": card,
        "generator": args.generator,
        "generator_id": ident,
        "size": args.size,
        "weights": args.weights or f"seeded {BENCH_SEED}",
        "taesd": args.taesd or f"seeded {BENCH_SEED}",
        **software(),
        "command": command_line(argv),
        "rows": rows,
    }
    write_document(out, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
