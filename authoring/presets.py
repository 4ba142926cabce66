"""Fitting schedules: ``paper`` (the original release's algorithm), ``reference`` (its budgets
and windows on our batched engine, not an equivalent), ``fast`` (the operator default),
``demo`` and ``encoder``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from prompts.stream_model import CHAINED, CHUNK_RESET


@dataclass(frozen=True)
class FitPreset:
    """How long and how aggressively one level is fitted."""

    name: str
    first_iterations: int  # budget of keyframe 0 (fitted alone, from scratch)
    later_iterations: int  # budget of every later keyframe
    first_patience: int  # iterations between plateau checks, keyframe 0
    later_patience: int  # iterations between plateau checks, later keyframes
    lr: float  # Adam learning rate of a cold (random) start
    warm_lr: float  # Adam learning rate of a keyframe warm-started from the previous one
    min_lr: float  # plateau halving stops here
    stop_after_plateaus: int  # stop after this many checks without improvement at min_lr (0: never)
    target_psnr: float | None  # stop once the interval's fitted PSNR (dB) reaches this
    latent_fraction: float = (
        0.0  # share of each budget spent on the x0-vs-encoded-target loss first
    )
    delta_penalty: float = (
        0.0  # rate term: weight of mean |U - U_prev| + mean |V - V_prev| (warm starts)
    )
    worst_frame_extra: float = 2.0  # extra weight on the previous iteration's worst frame
    improvement: float = 1e-4  # relative loss drop that counts as an improvement
    # How an iteration is made: "batched" (the interval in one batch, our engine) or
    # "sequential" (one Adam step per frame plus extra steps on the worst, the release's; of
    # the schedule's fields it reads the budgets, patience, lr, warm_lr, min_lr, improvement
    # and running_range, and it refuses a target_psnr: the release never stops early).
    algorithm: str = "batched"
    frames_per_step: int = 0  # batched: frames scored per step, a random subset (0: all)
    coarse_fraction: float = 0.0  # batched: share of each budget fitted at half resolution first
    cosine: bool = False  # batched: learning rate follows a cosine to min_lr over each phase
    clamp: bool = True  # score images clamped to [-1, 1] (the release scores raw outputs)
    cold_start: bool = False  # every keyframe from torch.rand, whatever the level's warm_start
    running_range: bool = False  # sequential: fake quantisation on a running min/max
    init_latent: str = (
        "taesd"  # "taesd" encoding of frame 0, or "sd-vae" (0.18215 x a posterior sample)
    )
    prev_latent_rule: str = CHUNK_RESET  # the stream's rule; CHAINED is the release's
    perceptual: str | None = None  # a required perceptual term kind ("vgg19"), None: any

    def __post_init__(self) -> None:
        if self.algorithm == "sequential" and self.target_psnr is not None:
            raise ValueError(
                f"preset {self.name} runs the original release's loop, which never stops early: "
                "--target-psnr does not apply to it"
            )

    def with_target(self, target_psnr: float | None) -> FitPreset:
        """The same schedule with another quality target."""
        return replace(self, target_psnr=target_psnr)

    def with_budgets(self, first: int, later: int) -> FitPreset:
        """The same schedule with other iteration budgets (patience scaled down to fit)."""
        return replace(
            self, first_iterations=first, later_iterations=later,
            first_patience=min(self.first_patience, max(1, first // 4)),
            later_patience=min(self.later_patience, max(1, later // 4)),
        )  # fmt: skip


PRESETS: dict[str, FitPreset] = {
    # The original release: 10000 / 1500 iterations, halve lr when 300 / 20 iterations bring
    # no new best, never stop early.
    "reference": FitPreset(
        name="reference", first_iterations=10000, later_iterations=1500,
        first_patience=300, later_patience=20, lr=0.1, warm_lr=0.1, min_lr=0.001,
        stop_after_plateaus=0, target_psnr=None,
    ),
    # Operator default: 50 steps of a cosine from a gentle warm-start rate, plus the rate term
    # (fewer coded bytes per keyframe at equal PSNR). On planted clips it matches the old
    # 150-step plateau schedule within a dB at a third of the steps (docs/inversion.md).
    "fast": FitPreset(
        name="fast", first_iterations=1000, later_iterations=50,
        first_patience=50, later_patience=10, lr=0.1, warm_lr=0.01, min_lr=1e-4,
        stop_after_plateaus=0, target_psnr=None, delta_penalty=0.03, cosine=True,
    ),
    # The original release, step for step (docs/inversion.md lists each point): per iteration one
    # Adam step per frame in order, the previous iteration's worst frame three in a row (not on
    # keyframe 0), VGG19 perceptual term, raw images, running-range quantiser, torch.rand starts,
    # lr halved (floor 0.001) and Adam re-created when a window of 300 / 20 iterations brings no
    # new best, the factors the best iteration's last step scored stored, "chained" previous
    # latents, SD-VAE initial latent.
    "paper": FitPreset(
        name="paper", first_iterations=10000, later_iterations=1500,
        first_patience=300, later_patience=20, lr=0.1, warm_lr=0.1, min_lr=0.001,
        stop_after_plateaus=0, target_psnr=None, improvement=0.0, algorithm="sequential",
        clamp=False, cold_start=True, running_range=True, init_latent="sd-vae",
        prev_latent_rule=CHAINED, perceptual="vgg19",
    ),
    # Seconds-scale ladders for `promptus demo` and CPU runs: with a faithful encoder the whole
    # budget is spent on the latent objective (no decoder backward pass, 20-40x cheaper on CPU).
    "demo": FitPreset(
        name="demo", first_iterations=80, later_iterations=12,
        first_patience=10, later_patience=4, lr=0.1, warm_lr=0.03, min_lr=0.005,
        stop_after_plateaus=1, target_psnr=None, latent_fraction=1.0,
    ),
    # The prompt encoder's factors as they come (nano, whose encoder was trained with the
    # generator): no refinement, so a ladder costs one encoder pass and the regeneration. On the
    # held-out demo clip the demo preset's 12 latent-objective steps lowered r8n10 from 20.6 to
    # 18.1 dB (the objective is not nano's pixel error), docs/inversion.md.
    "encoder": FitPreset(
        name="encoder", first_iterations=0, later_iterations=0,
        first_patience=1, later_patience=1, lr=0.0, warm_lr=0.0, min_lr=0.0,
        stop_after_plateaus=1, target_psnr=None,
    ),
}  # fmt: skip


def get_preset(name: str) -> FitPreset:
    """The named preset; ValueError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None


def check_perceptual(preset: FitPreset, spec: str) -> None:
    """Refuse a perceptual term the preset cannot run with (ValueError naming the fix)."""
    if preset.perceptual == "vgg19" and not spec.startswith("vgg19:"):
        raise ValueError(
            f"preset {preset.name} scores frames with the original release's VGG19 term: pass "
            "--perceptual vgg19:PATH, a local torchvision-layout VGG19 weights file "
            "(features.N.weight/bias, .safetensors or .pth); nothing is downloaded"
        )
