"""Every inversion preset and lever on a planted clip: GPU-seconds per video-second and quality.

The clip is *planted*: the generator itself makes it from known keyframes (a smooth random
prompt path, ``authoring.planted.planted_keyframes``), so recovery PSNR against those
frames measures how well a fit inverts, whatever the weights. On the GPU the generator is
SD-Turbo's UNet and a TAESD-shaped decoder built from the shipped configs with seeded random
weights (speed does not depend on values; see ``random_generator`` for the recipe); on the
CPU it is the tiny generator. Keyframe 0 is given (the planted one, as every preset would pay
it once per stream or segment); every run fits the later keyframes from it, and its cost per
keyframe times keyframes per second is the GPU-seconds per video-second, the whole fit
counted (steps, checks, regeneration; the one-off CUDA-graph capture or compile of a shape is
reported apart as ``setup_s``).

Also measured: milliseconds per optimiser step for each step kind and runtime lever (eager
with a host check every step, as the loop before the batched engine; eager; CUDA graph;
torch.compile + graph; autocast), and one iteration of the release's sequential loop.

Prints tables and writes the rows (``preset``, ``card``, ``gpu_s_per_video_s``,
``psnr_delta_vs_reference_db``, ...) to ``--out`` as JSON, after every row.

    python scripts/bench_inversion_gpu.py --device cuda --out docs/benchmarks/inversion_levers_h100.json
    python scripts/bench_inversion_gpu.py --arch tiny --device cpu --size 64 --frames 21 \\
        --out docs/benchmarks/inversion_levers_cpu_tiny.json
    python scripts/bench_inversion_gpu.py --plot docs/benchmarks/inversion_levers_h100.json \\
        docs/inversion_pareto_h100.png      # the quality / cost plot of a run's rows
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from authoring.batched import PhaseSchedule, StepOptions, stack_problems
from authoring.fit import FitState, LevelConfig, LevelFitter
from authoring.losses import VGG19_CONV_INDICES, FitLoss, LossWeights, perceptual_term
from authoring.metrics import psnr_per_frame
from authoring.planted import planted_clip, planted_keyframes
from authoring.presets import PRESETS, FitPreset
from engines import load_generator
from engines.backends import BackendOptions, TorchOptions, make_backend
from engines.devices import card_name
from engines.generator import Generator
from engines.loaders import Networks, generator_from_networks
from engines.model_configs import TAESD
from engines.sdturbo import build_unet
from engines.seeded import fill_random_
from engines.taesd import build_autoencoder_tiny
from prompts.keyframe import Keyframe
from prompts.quant import quantize_tensor

FPS = 30.0
VGG19_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)


# -- the generator -----------------------------------------------------------------------


def random_generator(
    arch: str, device: str, dtype: torch.dtype, seed: int = 0, channels_last: bool = False
) -> Generator:
    """SD-Turbo's architecture with seeded random weights (or the tiny generator).

    Torch's default initialisation gives an SD-Turbo-shaped generator whose pictures hardly
    depend on the prompt (nearly flat, 2/3 black); with the tiny generator's recipe they do.
    The decoder's output bias is then set so that pictures of typical prompts average mid-grey
    (else most pixels sit below black, where the clamp passes no gradient).
    """
    if arch == "tiny":
        return load_generator("tiny", device=device, dtype=dtype)
    with torch.device("meta"):
        unet, decoder = build_unet(), build_autoencoder_tiny(TAESD).decoder
    unet, decoder = unet.to_empty(device=device), decoder.to_empty(device=device)
    rng = torch.Generator(device).manual_seed(seed)
    fill_random_(unet, rng)
    fill_random_(decoder, rng)
    options = BackendOptions(device=device, dtype=torch.float32)
    probe = make_backend(unet, decoder, options)
    latent = torch.randn(2, 4, 64, 64, generator=rng, device=device)
    factors = torch.rand(2, 77, 8, generator=rng, device=device)
    context = factors @ torch.rand(2, 8, 1024, generator=rng, device=device) / math.sqrt(8)
    with torch.no_grad():
        _, image = probe.forward(latent, context)
    last = [m for m in decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    last.bias.data -= image.mean((0, 2, 3)).to(last.bias.dtype)
    options = BackendOptions(
        device=device, dtype=dtype, backend=TorchOptions(channels_last=channels_last)
    )
    return generator_from_networks("sd-turbo", Networks(unet, decoder), options)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# -- the planted clip ----------------------------------------------------------------------


@dataclasses.dataclass
class Planted:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    init: np.ndarray
    keyframes: tuple[Keyframe, ...]
    latents: np.ndarray  # x0 of every frame: the latent phase's targets from a perfect encoder


def plant(gen: Generator, args: argparse.Namespace) -> Planted:
    """The planted clip, recording each frame's x0 as the decoder makes it."""
    recorded: list[torch.Tensor] = []
    original = gen.backend.generate_group

    def recording(*a: Any) -> Any:
        latent_input, x0, frames = original(*a)
        recorded.append(x0.float().cpu())
        return latent_input, x0, frames

    gen.backend.generate_group = recording  # type: ignore[method-assign]
    try:
        frames, init = planted_clip(gen, args.size, args.frames, args.interval, args.rank,
                                    args.seed, drift=args.drift)  # fmt: skip
    finally:
        del gen.backend.generate_group
    keyframes = planted_keyframes(args.frames, args.interval, args.rank, args.seed, args.drift)
    return Planted(frames, init, keyframes, torch.cat(recorded).numpy())


# -- variants ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    """One measured configuration: a preset plus how its steps run."""

    name: str
    preset: FitPreset
    lever: str  # what the row shows
    steps: StepOptions = StepOptions(cuda_graph=False)
    oracle_latents: bool = False  # latent phase on the planted x0 (a perfect encoder: a bound)
    stack: int = 1  # identical problems fitted together (segments batched in one step)


def variants(cuda: bool) -> dict[str, Variant]:
    """Every preset and lever; ``--variants`` picks among them by name."""
    graph = StepOptions(cuda_graph=cuda)
    ref, fast = PRESETS["reference"], PRESETS["fast"]
    replace = dataclasses.replace
    # The lever rows' common base: a 50-step cosine from lr 0.01, no rate term.
    short = replace(fast.with_budgets(fast.first_iterations, 50), name="short", delta_penalty=0.0)
    rows = [  # in order of importance: a run that nears its time budget skips the last
        Variant("reference", ref, "today's reference (batched, 1500 steps)", graph),
        Variant("fast", fast, "the default preset (50 steps)", graph),
        Variant("fast-b20", fast.with_budgets(1000, 20), "default, 20 steps", graph),
        Variant("fast-b30", fast.with_budgets(1000, 30), "default, 30 steps", graph),
        Variant("fast-k2-b60", replace(fast.with_budgets(1000, 60), frames_per_step=2), "default, 60 steps of 2 frames", graph),
        Variant("fast-k2-b100", replace(fast.with_budgets(1000, 100), frames_per_step=2), "default, 100 steps of 2 frames", graph),
        Variant("fast-k3-b60", replace(fast.with_budgets(1000, 60), frames_per_step=3), "default, 60 steps of 3 frames", graph),
        Variant("short", short, "lever base: 50 cosine steps, lr 0.01", graph),
        Variant("short-subset3", replace(short, frames_per_step=3), "+ 3 random frames / step", graph),
        Variant("short-latent", replace(short, latent_fraction=0.5), "+ half the steps on latents (perfect encoder)", graph, oracle_latents=True),
        Variant("short-rate", replace(short, delta_penalty=0.03), "+ rate term", graph),
        Variant("short-stack3", short, "+ 3 segments in one step (per segment)", graph, stack=3),
        Variant("short-plateau", replace(short, cosine=False), "plateau rule instead of cosine", graph),
        Variant("short-coarse", replace(short, coarse_fraction=0.5), "+ half the steps at half size", graph),
        Variant("fast-no-graph", fast, "default, eager steps", StepOptions(cuda_graph=False)),
        # Segments stacked in one step (issue 23): the cost per segment, the same fit each.
        Variant("fast-s4", fast, "default, 4 segments a step", graph, stack=4),
        Variant("fast-s8-k3", replace(fast, frames_per_step=3), "default, 3 frames of 8 segments a step", graph, stack=8),
        Variant("plateau-s8-k3-b50", replace(short, cosine=False, frames_per_step=3), "plateau rule, 3 frames of 8 segments, 50 steps", graph, stack=8),
        Variant("plateau-s8-k3-b100", replace(short.with_budgets(1000, 100), cosine=False, frames_per_step=3), "plateau rule, 3 frames of 8 segments, 100 steps", graph, stack=8),
        Variant("plateau-s4-b50", replace(short, cosine=False), "plateau rule, 4 segments, 50 steps", graph, stack=4),
        Variant("plateau-s8-k5-b60", replace(short.with_budgets(1000, 60), cosine=False, frames_per_step=5), "plateau rule, 5 frames of 8 segments, 60 steps", graph, stack=8),
        Variant("reference-s4", ref, "reference, 4 segments a step (same result per segment)", graph, stack=4),
    ]  # fmt: skip
    return {v.name: v for v in rows}


# -- measuring -----------------------------------------------------------------------------


def bench_loss_weights(args: argparse.Namespace) -> LossWeights:
    """The fitting loss of every run: 0.8 MSE + 0.2 perceptual, plus ``--context-l1`` mean|c|.

    The release's 0.1 mean|c| pulls every fit away from the planted prompts (their |c| is
    about 0.7, so the term outweighs a 35 dB MSE some 70 times): with it, more optimisation
    means lower recovery PSNR, and the benchmark would rank schedules by how little they move.
    """
    return LossWeights(context_l1=args.context_l1)


def level_config(args: argparse.Namespace) -> LevelConfig:
    chunk = -(-args.frames // args.interval) * args.interval  # one chunk: the whole clip
    return LevelConfig(rank=args.rank, interval=args.interval, chunk_frames=chunk, seed=args.seed)


def fitter_for(
    gen: Generator, planted: Planted, variant: Variant, args: argparse.Namespace
) -> LevelFitter:
    loss = FitLoss(perceptual_term("ms-ssim"), bench_loss_weights(args), variant.preset.clamp)
    latents = planted.latents if variant.oracle_latents else None
    return LevelFitter(
        gen, planted.frames, planted.init, level_config(args), variant.preset, loss, latents,
        variant.steps,
    )  # fmt: skip


def start_state(fitter: LevelFitter, planted: Planted) -> FitState:
    """The state after keyframe 0 when keyframe 0 is the planted one."""
    first = planted.keyframes[0]
    _, _, _, group_input, last_x0 = fitter.regenerate(fitter.spans[0], first, FitState())
    return FitState([first], [], first.factors(), group_input, last_x0)


def run_fit(gen: Generator, planted: Planted, variant: Variant, args: argparse.Namespace) -> dict:
    """Fit keyframes 1.. from the planted keyframe 0; time, iterations and recovery PSNR."""
    fitter = fitter_for(gen, planted, variant, args)
    state0 = start_state(fitter, planted)
    setup = 0.0
    if variant.steps.cuda_graph or variant.steps.compile_mode:  # capture/compile each shape once
        warm = fitter.preset
        fitter.preset = warm.with_budgets(warm.first_iterations, 10)
        sync(args.device)
        started = time.perf_counter()
        fitter.fit_span(fitter.spans[1], copy.deepcopy(state0))
        sync(args.device)
        setup = time.perf_counter() - started
        fitter.preset = warm
    decoded = planted.frames.copy()
    if variant.stack > 1:
        return run_stacked(fitter, state0, variant, args, setup)

    def keep(_: FitState, result: Any) -> None:
        decoded[result.decoded_start : result.decoded_start + len(result.decoded)] = result.decoded

    sync(args.device)
    started = time.perf_counter()
    state = fitter.fit(copy.deepcopy(state0), on_keyframe=keep)
    sync(args.device)
    seconds = time.perf_counter() - started
    fitted = len(state.keyframes) - 1
    psnr = psnr_per_frame(decoded[1:], planted.frames[1:])
    return {
        "seconds": round(seconds, 3), "setup_s": round(setup, 2),
        "gpu_s_per_keyframe": seconds / fitted,
        "gpu_s_per_video_s": seconds / fitted * FPS / args.interval,
        "psnr_db": round(float(psnr.mean()), 3), "psnr_min_db": round(float(psnr.min()), 3),
        "iterations": [s.iterations for s in state.stats],
    }  # fmt: skip


def run_stacked(
    fitter: LevelFitter, state0: FitState, variant: Variant, args: argparse.Namespace, setup: float
) -> dict:
    """Keyframe 1 fitted as ``stack`` identical problems in one batch: time per problem."""
    span = fitter.spans[1]
    problem = fitter.problem(span, state0)
    stacked = stack_problems([problem] * variant.stack)
    u0, v0 = (torch.from_numpy(a).to(fitter.device) for a in fitter.initial_factors(span, state0))
    schedule = dataclasses.replace(
        fitter.schedule(span, fitter.preset.later_iterations, fitter.preset.warm_lr, final=True),
        lr=[fitter.preset.warm_lr] * variant.stack,
    )
    expand = lambda t: t[None].expand(variant.stack, *t.shape).contiguous()  # noqa: E731
    fitter.optimiser.run(
        stacked, expand(u0), expand(v0), dataclasses.replace(schedule, budget=10), False
    )
    sync(args.device)
    started = time.perf_counter()
    result = fitter.optimiser.run(stacked, expand(u0), expand(v0), schedule, latent=False)
    keyframe = Keyframe(span.end, quantize_tensor(result.u[0]), quantize_tensor(result.v[0]))
    _, decoded, mse, *_ = fitter.regenerate(span, keyframe, state0)
    sync(args.device)
    per_problem = (time.perf_counter() - started) / variant.stack
    got = decoded[1:]  # the group after the previous keyframe's frame (+ p_k on the last span)
    psnr = psnr_per_frame(got, fitter.frames[span.start + 1 : span.start + 1 + len(got)])
    return {
        "seconds": round(per_problem, 3), "setup_s": round(setup, 2),
        "gpu_s_per_keyframe": per_problem, "gpu_s_per_video_s": per_problem * FPS / args.interval,
        "psnr_db": round(float(psnr.mean()), 3), "psnr_min_db": round(float(psnr.min()), 3),
        "iterations": [result.steps], "note": "keyframe 1 only, frames 1..N-1",
    }  # fmt: skip


def step_ms(
    gen: Generator, planted: Planted, args: argparse.Namespace, steps: StepOptions, *,
    frames_per_step: int = 0, latent: bool = False, coarse: bool = False, check_every: int = 0,
    stack: int = 1, span_index: int = 1, repeats: int = 10,
) -> float:  # fmt: skip
    """Milliseconds per optimiser step of one kind (after a warm-up that captures/compiles).

    ``check_every=1`` reads the best loss back to the host after every step, as the loop
    before the batched engine did (three host reads an iteration).
    """
    variant = Variant("timing", PRESETS["reference"], "", steps, oracle_latents=latent)
    fitter = fitter_for(gen, planted, variant, args)
    state = start_state(fitter, planted)
    span = fitter.spans[span_index] if span_index < len(fitter.spans) else fitter.spans[0]
    if span_index == 0:
        span, state = fitter.spans[0], FitState()
    problem = fitter.problem(span, state)
    problem = problem.coarse() if coarse else problem
    problem = stack_problems([problem] * stack) if stack > 1 else problem
    u0, v0 = (torch.from_numpy(a).to(fitter.device) for a in fitter.initial_factors(span, state))
    u0, v0 = u0[None].repeat(stack, 1, 1), v0[None].repeat(stack, 1, 1)

    def schedule(budget: int) -> PhaseSchedule:
        return PhaseSchedule(
            budget=budget, lr=[0.01] * stack, min_lr=0.001, patience=check_every or budget,
            improvement=0.0, stop_after_plateaus=0, worst_frame_extra=2.0,
            frames_per_step=frames_per_step,
        )  # fmt: skip

    fitter.optimiser.run(problem, u0, v0, schedule(3), latent)  # warm-up / capture / compile
    sync(args.device)
    started = time.perf_counter()
    result = fitter.optimiser.run(problem, u0, v0, schedule(repeats), latent)
    sync(args.device)
    return (time.perf_counter() - started) / result.steps * 1000


def measure_steps(
    gen: Generator, planted: Planted, args: argparse.Namespace, report: Report,
    kinds: list[tuple[str, StepOptions, dict]], deadline: float,
) -> None:  # fmt: skip
    """``step_ms`` of each kind, recorded (per segment for stacked kinds)."""
    for name, options, extra in kinds:
        if not args.device.startswith("cuda"):
            name = name.replace("CUDA graph", "eager (CPU)")
        needed = 150.0 if options.compile_mode else 5.0
        ms = guarded(report, name, deadline, needed,
                     lambda o=options, e=extra: step_ms(gen, planted, args, o, **e))  # fmt: skip
        if ms is None:
            continue
        ms = ms / extra.get("stack", 1)
        report.steps.append({"step": name, "card": report.meta["card"], "ms": round(ms, 2)})
        print(f"step: {name}: {ms:.1f} ms", flush=True)
        report.save()


def tiny_vgg19(path: Path, widths: tuple[int, ...]) -> None:
    """A random VGG19-layout weights file (timing the release's loop needs no real weights)."""
    from safetensors.torch import save_file

    state, cin = {}, 3
    rng = torch.Generator().manual_seed(0)
    for index, cout in zip(VGG19_CONV_INDICES, widths, strict=True):
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=rng) / math.sqrt(
            9 * cin
        )
        state[f"features.{index}.bias"] = torch.zeros(cout)
        cin = cout
    save_file(state, str(path))


def paper_iteration_s(
    gen: Generator, planted: Planted, args: argparse.Namespace, vgg: Path
) -> float:
    """Seconds of one iteration of the release's sequential loop: the mean of a keyframe's
    iterations 0 and 1 (10 and 12 steps at N=10)."""
    preset = PRESETS["paper"].with_budgets(1, 1)
    config = dataclasses.replace(level_config(args), prev_latent_rule="chained")
    loss = FitLoss(perceptual_term(f"vgg19:{vgg}"), bench_loss_weights(args), clamp=False)
    fitter = LevelFitter(gen, planted.frames, planted.init, config, preset, loss)
    state = start_state(fitter, planted)
    fitter.fit_span(fitter.spans[1], copy.deepcopy(state))  # warm-up
    fitter.preset = preset.with_budgets(1, 2)
    sync(args.device)
    started = time.perf_counter()
    fitter.fit_span(fitter.spans[1], copy.deepcopy(state))
    sync(args.device)
    return (time.perf_counter() - started) / 2


# -- the run -------------------------------------------------------------------------------


class Report:
    """Rows as they come: printed, and the JSON rewritten after each."""

    def __init__(self, path: Path | None, meta: dict) -> None:
        self.path = path
        self.meta = meta
        self.fits: list[dict] = []
        self.steps: list[dict] = []

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            document = {**self.meta, "rows": self.fits, "step_ms": self.steps}
            self.path.write_text(json.dumps(document, indent=1) + "\n")


def guarded(
    report: Report, what: str, deadline: float, needed_s: float, job: Callable[[], Any]
) -> Any:
    """Run ``job`` unless the deadline is too close; record a failure instead of dying."""
    if time.perf_counter() + needed_s > deadline:
        print(
            f"skipped {what}: {deadline - time.perf_counter():.0f} s left, needs ~{needed_s:.0f}",
            flush=True,
        )
        report.meta.setdefault("skipped", []).append(what)
        return None
    try:
        return job()
    except Exception as error:  # noqa: BLE001 - one failing lever must not lose the others
        print(f"failed {what}: {type(error).__name__}: {error}", flush=True)
        report.meta.setdefault("failed", {})[what] = f"{type(error).__name__}: {error}"
        return None
    finally:  # captured graphs hold their memory pools until their fitter is collected
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def plot_front(document: dict, path: Path) -> None:
    """Quality against GPU-seconds per video-second, one point per fit (labelled with its steps
    per keyframe), the Pareto front (cheapest at each quality) joined. Quality is the PSNR
    minus ``reference``'s, or the PSNR itself when the run has no reference row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    relative = any(r.get("psnr_delta_vs_reference_db") is not None for r in document["rows"])
    key = "psnr_delta_vs_reference_db" if relative else "psnr_db"
    rows = [r for r in document["rows"] if r.get(key) is not None]
    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    for row in rows:
        x, y = row["gpu_s_per_video_s"], row[key]
        axes.scatter(x, y, color="tab:blue", zorder=3)
        label = f"{row['variant']} ({'/'.join(str(i) for i in row['iterations'])})"
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    front, best = [], -math.inf
    for row in sorted(rows, key=lambda r: r["gpu_s_per_video_s"]):
        if row[key] > best:
            best = row[key]
            front.append(row)
    axes.plot([r["gpu_s_per_video_s"] for r in front], [r[key] for r in front],
              color="tab:gray", linestyle="--", zorder=2, label="Pareto front")  # fmt: skip
    if relative:
        axes.axhline(-0.5, color="tab:green", linewidth=0.8, label="reference - 0.5 dB")
    axes.axvline(5.0, color="tab:orange", linewidth=0.8, label="5 GPU-s / video-s")
    axes.set_xscale("log")
    axes.set_xlabel("GPU-seconds per video-second (whole fit); label: variant (steps / keyframe)")
    axes.set_ylabel(
        "planted-clip PSNR minus reference's (dB)" if relative else "planted-clip PSNR (dB)"
    )
    axes.set_title(f"Inversion presets and levers, {document['card']}", fontsize=9)
    axes.legend(fontsize=7)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=("sd-turbo", "tiny"), default="sd-turbo")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--dtype",
        choices=("bfloat16", "float32"),
        default=None,
        help="generator precision (default: bf16 on CUDA, float32 on the CPU)",
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument(
        "--frames", type=int, default=11, help="planted clip length (keyframes every interval)"
    )
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--drift",
        type=float,
        default=0.8,
        help="planted prompt drift (std of the sine path's direction)",
    )
    parser.add_argument(
        "--context-l1",
        type=float,
        default=0.0,
        help="weight of mean|c| in the fitting loss (the release's 0.1; see bench_loss_weights)",
    )
    parser.add_argument("--variants", nargs="*", default=None, help="fits to run (default: all)")
    parser.add_argument("--no-steps", action="store_true", help="skip the per-step timings")
    parser.add_argument("--budget-s", type=float, default=1e9, help="skip what would end past this")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--plot",
        nargs=2,
        type=Path,
        metavar=("JSON", "PNG"),
        help="only draw the plot of an earlier run's JSON",
    )
    args = parser.parse_args()  # fmt: skip
    if args.plot:
        plot_front(json.loads(args.plot[0].read_text()), args.plot[1])
        return
    begun = time.perf_counter()
    deadline = begun + args.budget_s
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    dtype = (
        getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if cuda else torch.float32)
    )
    if cuda:
        torch.backends.cudnn.benchmark = True
    gen = random_generator(args.arch, args.device, dtype, seed=args.seed)
    planted = plant(gen, args)
    card = card_name(args.device)
    print(f"{card}: {args.arch} random weights, {args.size}x{args.size}, r{args.rank}n{args.interval}, "
          f"{args.frames} planted frames, {dtype}; setup {time.perf_counter() - begun:.1f} s", flush=True)  # fmt: skip
    report = Report(
        args.out, {"card": card, "settings": {k: str(v) for k, v in vars(args).items()}}
    )
    graph = StepOptions(cuda_graph=cuda)

    if not args.no_steps:
        kinds: list[tuple[str, StepOptions, dict]] = [
            ("pixel, batch 10, eager + host check each step (loop before the engine)", StepOptions(cuda_graph=False), {"check_every": 1}),
            ("pixel, batch 10, CUDA graph", graph, {}),
            ("latent, batch 10, CUDA graph", graph, {"latent": True}),
            ("pixel, 3 of 10 frames, CUDA graph", graph, {"frames_per_step": 3}),
            ("pixel, 2 of 10 frames, CUDA graph", graph, {"frames_per_step": 2}),
            ("pixel, batch 10 at half size, CUDA graph", graph, {"coarse": True}),
            ("pixel, 3 segments x 3 frames, CUDA graph (per segment)", graph, {"frames_per_step": 3, "stack": 3}),
            ("pixel, batch 1, eager + host check (the release's step)", StepOptions(cuda_graph=False), {"check_every": 1, "span_index": 0}),
        ]  # fmt: skip
        measure_steps(gen, planted, args, report, kinds, deadline)
        if cuda and args.arch == "sd-turbo":  # fp32 weights under bf16 autocast (a second copy)

            def autocast_ms() -> float:
                fp32 = random_generator(args.arch, args.device, torch.float32, seed=args.seed)
                options = dataclasses.replace(graph, autocast=torch.bfloat16)
                try:
                    return step_ms(fp32, planted, args, options)
                finally:
                    del fp32
                    torch.cuda.empty_cache()

            name = "pixel, batch 10, fp32 weights + bf16 autocast, CUDA graph"
            ms = guarded(report, name, deadline, 20.0, autocast_ms)
            if ms is not None:
                report.steps.append({"step": name, "card": card, "ms": round(ms, 2)})
                print(f"step: {name}: {ms:.1f} ms", flush=True)
        vgg = Path("/tmp/promptus_bench_vgg19.safetensors")
        tiny_vgg19(vgg, VGG19_WIDTHS if args.arch == "sd-turbo" else (4,) * 16)
        seconds = guarded(
            report,
            "paper iteration",
            deadline,
            20.0,
            lambda: paper_iteration_s(gen, planted, args, vgg),
        )
        if seconds is not None:
            report.steps.append({"step": "paper: one iteration (sequential, mean of 10 and 12 steps, VGG19)", "card": card,
                                 "ms": round(seconds * 1000, 1)})  # fmt: skip
            print(f"step: paper iteration: {seconds * 1000:.0f} ms", flush=True)
            report.save()

    table = variants(cuda)
    chosen = args.variants or list(table)
    reference_row = None
    for name in chosen:
        variant = table[name]
        expected = _expected_seconds(report, variant, args)
        row = guarded(
            report, name, deadline, expected, lambda v=variant: run_fit(gen, planted, v, args)
        )
        if row is None:
            continue
        row = {
            "preset": variant.preset.name,
            "variant": name,
            "lever": variant.lever,
            "card": card,
            "segments_per_step": variant.stack,
            **row,
        }
        if name == "reference":
            reference_row = row
        report.fits.append(row)
        print(f"fit {name}: {row['gpu_s_per_video_s']:.2f} GPU-s/video-s, {row['psnr_db']:.2f} dB, "
              f"iterations {row['iterations']}, setup {row['setup_s']} s", flush=True)  # fmt: skip
        report.save()
    if cuda and not args.no_steps:  # last: compiling fwd + bwd takes minutes
        compiled = dataclasses.replace(graph, compile_mode="default")
        measure_steps(gen, planted, args, report,
                      [("pixel, batch 10, torch.compile + CUDA graph", compiled, {})], deadline)  # fmt: skip
    for row in report.fits:
        row["psnr_delta_vs_reference_db"] = (
            round(row["psnr_db"] - reference_row["psnr_db"], 3) if reference_row else None
        )
    _today(report, args)
    report.save()
    _print_tables(report)


def _expected_seconds(report: Report, variant: Variant, args: argparse.Namespace) -> float:
    """A rough duration from the measured step time (to skip what cannot finish)."""
    steps = {row["step"]: row["ms"] for row in report.steps}
    ms = steps.get("pixel, batch 10, CUDA graph") or steps.get("pixel, batch 10, eager") or 0.0
    keyframes = len(range(args.interval, args.frames, args.interval)) + (
        (args.frames - 1) % args.interval != 0
    )
    extra = 120.0 if variant.steps.compile_mode else 0.0
    return ms / 1000 * variant.preset.later_iterations * keyframes + extra


def _today(report: Report, args: argparse.Namespace) -> None:
    """Projected GPU-s / video-s of reference with the loop before the engine (eager steps and
    a host check each step), from its step time: reference's 1500 steps a keyframe."""
    steps = {row["step"]: row["ms"] for row in report.steps}
    old = steps.get("pixel, batch 10, eager + host check each step (loop before the engine)")
    if old is None:
        return
    per_video_s = old / 1000 * PRESETS["reference"].later_iterations * FPS / args.interval
    report.meta["reference_before_engine_gpu_s_per_video_s"] = round(per_video_s, 1)
    batch1 = steps.get("pixel, batch 1, eager + host check (the release's step)")
    if batch1 is not None:
        release = batch1 / 1000 * 12 * PRESETS["reference"].later_iterations * FPS / args.interval
        report.meta["release_unbatched_projected_gpu_s_per_video_s"] = round(release, 1)


def _print_tables(report: Report) -> None:
    print(f"\ncard: {report.meta['card']}")
    for key in (
        "reference_before_engine_gpu_s_per_video_s",
        "release_unbatched_projected_gpu_s_per_video_s",
    ):
        if key in report.meta:
            print(f"{key}: {report.meta[key]}")
    print("\n| step | ms |\n|---|---:|")
    for row in report.steps:
        print(f"| {row['step']} | {row['ms']:.1f} |")
    print(
        "\n| variant | lever | GPU-s / video-s | PSNR dB | vs reference dB | iterations | setup s |"
    )
    print("|---|---|---:|---:|---:|---|---:|")
    for row in report.fits:
        delta = row.get("psnr_delta_vs_reference_db")
        print(f"| {row['variant']} | {row['lever']} | {row['gpu_s_per_video_s']:.2f} | {row['psnr_db']:.2f} | "
              f"{'' if delta is None else f'{delta:+.2f}'} | {row['iterations']} | {row['setup_s']} |")  # fmt: skip


if __name__ == "__main__":
    main()
