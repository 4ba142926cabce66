"""The paper preset: the release's loop checked by hand, its VGG19 term, quantiser, start and rule.

The hand-computed case: two frames, one-element factors, frame j scores (Q(u) - a_j)^2 with
a = (1, 0); u starts at 0.5. Adam's arithmetic is written out below (betas 0.9 / 0.999,
eps 1e-8) and the quantiser as the grid of its running range, so the expected trajectory
comes from the definitions, not from the code under test. The schedule cases (sweep order,
learning-rate windows) script each frame's loss by hand; the tiny generator checks that a
level's fit runs them as the preset says (the optimisation is chaotic: the schedule and the
stored bytes are checked exactly, no trajectory to a tolerance).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from authoring.fit import FitState, LevelConfig, LevelFitter
from authoring.losses import (
    VGG19_CONV_INDICES,
    FitLoss,
    LossWeights,
    VGG19PreReluLoss,
    perceptual_term,
)
from authoring.presets import PRESETS, check_perceptual
from authoring.sequential import (
    RunningRange,
    SequentialFit,
    SequentialSchedule,
    StepRecord,
    sweep_order,
)
from prompts.quant import fake_quantize, quantize_tensor

torch.set_num_threads(1)

TARGETS = (1.0, 0.0)


def _grid(x: float, high: float) -> float:
    """8-bit fake quantisation of x on the range [0, high] (zero point 0)."""
    scale = high / 255
    return min(max(round(x / scale), 0), 255) * scale


class _Adam:
    """Adam by the textbook, one scalar."""

    def __init__(self, lr: float) -> None:
        self.lr, self.m, self.v, self.t = lr, 0.0, 0.0, 0

    def step(self, x: float, g: float) -> float:
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        m_hat = self.m / (1 - 0.9**self.t)
        v_hat = self.v / (1 - 0.999**self.t)
        return x - self.lr * m_hat / (math.sqrt(v_hat) + 1e-8)


def _iteration_of(call: int, frames: int, extra: int) -> int:
    """Iteration of the ``call``-th step when iteration 0 steps each frame once and every later
    one adds ``extra`` steps (the release's schedule, written out)."""
    return 0 if call < frames else 1 + (call - frames) // (frames + extra)


def test_sweep_repeats_the_previous_worst_frame_in_place() -> None:
    frames = [1, 2, 3, 4, 5]
    assert sweep_order(frames, None, 2) == [1, 2, 3, 4, 5]  # iteration 0: no worst yet
    assert sweep_order(frames, 5, 2) == [1, 2, 3, 4, 5, 5, 5]
    assert sweep_order(frames, 2, 2) == [1, 2, 2, 2, 3, 4, 5]
    assert sweep_order([0], 0, 0) == [0]  # keyframe 0: no extra steps


def test_hand_computed_steps_and_the_stored_factors_are_the_last_scored() -> None:
    offsets = (0.0, 10.0)  # iteration 1 scores worse: iteration 0 stays the best
    calls = {"n": 0}

    def frame_loss(frame: int, qu: torch.Tensor, qv: torch.Tensor) -> torch.Tensor:
        iteration = _iteration_of(calls["n"], 2, 2)
        calls["n"] += 1
        return ((qu - TARGETS[frame]) ** 2).sum() + ((qv - 0.25) ** 2).sum() + offsets[iteration]

    trace: list[StepRecord] = []
    schedule = SequentialSchedule(iterations=2, lr=0.1, patience=100, min_lr=0.001)
    result = SequentialFit(frame_loss, [0, 1], schedule, trace.append).run(
        torch.tensor([[0.5]]), torch.tensor([[0.25]])
    )
    # Iteration 0: frames 0 and 1 once; its worst (frame 1: 0.36 > 0.25) three times in a row
    # at its place in iteration 1.
    assert [(r.iteration, r.frame, r.worst_step) for r in trace] == [
        (0, 0, False), (0, 1, False),
        (1, 0, False), (1, 1, False), (1, 1, True), (1, 1, True),
    ]  # fmt: skip
    adam, u, high, before = _Adam(0.1), 0.5, 0.0, []
    for record in trace:
        high = max(high, u)  # the running range grows with each forward, never shrinks
        q = _grid(u, high)
        before.append(u)
        offset = offsets[record.iteration]
        assert record.loss == pytest.approx((q - TARGETS[record.frame]) ** 2 + offset, abs=1e-5)
        assert record.u_range == pytest.approx((0.0, high), abs=1e-7)
        assert record.v_range == pytest.approx((0.0, 0.25))
        u = adam.step(u, 2 * (q - TARGETS[record.frame]))
        assert record.u.item() == pytest.approx(u, abs=2e-6)
        assert record.lr == 0.1
    assert trace[1].u.item() == pytest.approx(0.6 - 0.0142945, abs=1e-6)  # checked on paper
    assert [r.adam_step for r in trace] == [1, 2, 3, 4, 5, 6]  # one Adam throughout
    # The best is iteration 0 (mean of 0.25 and 0.36, taken at different states of u), and
    # what is stored is what its last step scored: u before that step's update, quantised on
    # the range of that step -- not the factors after it, which nothing scored.
    assert result.loss == pytest.approx((0.25 + 0.36) / 2, abs=1e-5)
    assert result.u.item() == pytest.approx(before[1], abs=2e-6)
    assert torch.equal(result.u, trace[0].u) and not torch.equal(result.u, trace[1].u)
    assert result.u_range == trace[1].u_range
    stored = quantize_tensor(result.u, result.u_range).dequantize()
    assert stored.item() == pytest.approx(_grid(before[1], trace[1].u_range[1]), abs=1e-7)
    assert result.iterations == 2 and result.lr == 0.1


# First loss of frames 1, 2, 3 in each iteration (repeat steps score 100, which must count
# neither in the mean nor for the worst), with the iteration mean and the worst frame.
SCRIPTED = [
    (4.0, 6.0, 5.0),  # 0: mean 5 (best), worst 2
    (4.0, 4.0, 4.0),  # 1: mean 4 (best), worst 1 (ties go to the earlier frame)
    (3.5, 4.5, 5.5),  # 2: mean 4.5, worst 3
    (5.5, 4.5, 3.5),  # 3: mean 4.5, worst 1      -> window 2-3 has no new best: halve
    (3.0, 2.0, 4.0),  # 4: mean 3 (best), worst 3
    (3.5, 4.5, 2.5),  # 5: mean 3.5, worst 2      -> window 4-5 has one: keep rate and Adam
    (3.5, 3.5, 3.5),  # 6: worst 1
    (2.5, 3.5, 4.5),  # 7: worst 3                -> no new best: halve to the floor
    (3.5, 4.5, 2.5),  # 8: worst 2
    (4.5, 3.5, 2.5),  # 9: worst 1                -> none: at the floor, a new Adam only
    (3.5, 3.5, 3.5),  # 10
]


def test_learning_rate_halves_only_after_a_window_without_a_new_best() -> None:
    calls = {"n": 0}
    seen: set[tuple[int, int]] = set()

    def frame_loss(frame: int, qu: torch.Tensor, qv: torch.Tensor) -> torch.Tensor:
        iteration = _iteration_of(calls["n"], 3, 2)
        calls["n"] += 1
        repeat = (iteration, frame) in seen
        seen.add((iteration, frame))
        value = 100.0 if repeat else SCRIPTED[iteration][frame - 1]
        return 0.0 * (qu.sum() + qv.sum()) + value

    trace: list[StepRecord] = []
    schedule = SequentialSchedule(iterations=11, lr=0.1, patience=2, min_lr=0.04)
    result = SequentialFit(frame_loss, [1, 2, 3], schedule, trace.append).run(
        torch.full((2, 2), 0.5), torch.full((2, 3), 0.5)
    )
    by_iteration = [[r for r in trace if r.iteration == i] for i in range(11)]
    assert [[r.frame for r in steps] for steps in by_iteration] == [
        [1, 2, 3], [1, 2, 2, 2, 3], [1, 1, 1, 2, 3], [1, 2, 3, 3, 3], [1, 1, 1, 2, 3],
        [1, 2, 3, 3, 3], [1, 2, 2, 2, 3], [1, 1, 1, 2, 3], [1, 2, 3, 3, 3], [1, 2, 2, 2, 3],
        [1, 1, 1, 2, 3],
    ]  # fmt: skip
    rates = [0.1] * 4 + [0.05] * 4 + [0.04] * 3
    assert [{r.lr for r in steps} for steps in by_iteration] == [{lr} for lr in rates]
    # Adam is re-created (step count back to 1) after iterations 3, 7 and 9 only: the check
    # after iteration 5 found a new best and kept it, the one after 9 kept the floored rate.
    lives = [trace[:18], trace[18:38], trace[38:48], trace[48:]]
    assert [[r.adam_step for r in life] for life in lives] == [
        list(range(1, len(life) + 1)) for life in lives
    ]
    assert [len(life) for life in lives] == [18, 20, 10, 5]
    assert result.loss == 3.0 and result.lr == 0.04 and result.iterations == 11


def test_a_relative_improvement_margin_is_read_at_the_check() -> None:
    trace: list[StepRecord] = []

    def frame_loss(frame: int, qu: torch.Tensor, qv: torch.Tensor) -> torch.Tensor:
        return 0.0 * qu.sum() + 1.0 / (1 + len(trace))  # iteration i scores 1 / (i + 1)

    strict = SequentialSchedule(iterations=4, lr=0.1, patience=1, min_lr=0.001, extra_steps=0)
    SequentialFit(frame_loss, [0], strict, trace.append).run(torch.ones(1, 1), torch.ones(1, 1))
    assert [r.lr for r in trace] == [0.1] * 4
    trace.clear()
    # 1 -> 1/2 drops by 50%, a new best at a 40% margin; 1/2 -> 1/3 by 33% only: halve.
    margin = dataclasses.replace(strict, improvement=0.4)
    SequentialFit(frame_loss, [0], margin, trace.append).run(torch.ones(1, 1), torch.ones(1, 1))
    assert [r.lr for r in trace] == [0.1, 0.1, 0.1, 0.05]


@pytest.fixture(scope="module")
def tiny() -> Any:
    from engines import load_generator

    return load_generator("tiny", device="cpu")


def _paper_fitter(tiny: Any, **changes: Any) -> LevelFitter:
    """The paper preset at tiny sizes: 5 random 64x64 frames, rank 1, interval 2 (keyframes 0,
    2, 4), chained; short budgets and windows, and a rate high enough that windows without a
    new best (and so halvings) occur. No perceptual term: the schedule is under test."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    init = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    schedule = {"first_iterations": 3, "later_iterations": 8, "first_patience": 2,
                "later_patience": 3, "lr": 4.0, "warm_lr": 4.0, "min_lr": 1.0}  # fmt: skip
    preset = dataclasses.replace(PRESETS["paper"], **(schedule | changes))
    config = LevelConfig(rank=1, interval=2, chunk_frames=4, seed=3, prev_latent_rule="chained")
    loss = FitLoss(perceptual_term("none"), LossWeights(), clamp=False)
    return LevelFitter(tiny, frames, init, config, preset, loss)


def _starts(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = torch.Generator().manual_seed(11)
    return [(torch.rand(77, 1, generator=rng).numpy(), torch.rand(1, 1024, generator=rng).numpy())
            for _ in range(count)]  # fmt: skip


def test_a_level_fit_follows_the_release_schedule_on_the_tiny_generator(tiny: Any) -> None:
    fitter = _paper_fitter(tiny)
    # The preset's windows and floor are read; keyframe 0 gets no extra steps.
    first, later = (fitter.sequential_schedule(span) for span in fitter.spans[:2])
    assert first == SequentialSchedule(3, 4.0, patience=2, min_lr=1.0, extra_steps=0)
    assert later == SequentialSchedule(8, 4.0, patience=3, min_lr=1.0, extra_steps=2)
    starts = _starts(len(fitter.spans))
    trace: list[StepRecord] = []
    state = fitter.fit(initial=lambda span, _: starts[span.index], on_step=trace.append)
    assert len(state.keyframes) == 3
    after_update_differs = []
    for span, keyframe, stats in zip(fitter.spans, state.keyframes, state.stats, strict=True):
        schedule = fitter.sequential_schedule(span)
        steps = [r for r in trace if r.keyframe == span.index]
        # The release's rule, replayed on the recorded losses: which frames each iteration
        # steps, at which rate, on which Adam, and which iteration is the best.
        worst, best, checked, lr, adam, position = None, math.inf, math.inf, schedule.lr, 0, 0
        bests: list[int] = []
        for iteration in range(schedule.iterations):
            its = [r for r in steps if r.iteration == iteration]
            expected = sorted(span.frames + ([worst] * 2 if worst is not None else []))
            assert [r.frame for r in its] == expected, (span.index, iteration)
            assert [r.lr for r in its] == [lr] * len(its)
            assert [r.adam_step for r in its] == list(range(adam + 1, adam + len(its) + 1))
            adam += len(its)
            position += len(its)
            first: dict[int, float] = {}
            for record in its:
                first.setdefault(record.frame, record.loss)
            mean = sum(first.values()) / len(first)
            if mean < best:
                best, bests = mean, bests + [position - 1]
            worst = max(first, key=first.__getitem__) if span.index > 0 else None
            if (iteration + 1) % schedule.patience == 0:
                if best == checked:
                    lr, adam = max(lr / 2, schedule.min_lr), 0
                checked = best
        assert len(steps) == position and stats.loss == best
        # What is stored: the factors the best iteration's last step scored (before its update),
        # quantised on the ranges of that step.
        last = bests[-1]
        scored = starts[span.index] if last == 0 else (steps[last - 1].u, steps[last - 1].v)
        assert keyframe.u == quantize_tensor(scored[0], steps[last].u_range)
        assert keyframe.v == quantize_tensor(scored[1], steps[last].v_range)
        low, high = (torch.tensor(x) for x in steps[last].u_range)
        q_scored = fake_quantize(torch.as_tensor(scored[0]), low, high)  # what the step saw
        assert torch.equal(torch.from_numpy(keyframe.u.dequantize()), q_scored)
        updated = quantize_tensor(steps[last].u, steps[last].u_range)  # never scored
        after_update_differs.append(keyframe.u != updated)
    assert all(after_update_differs)
    assert any(r.lr < 4.0 for r in trace)  # a window without a new best did occur
    # Keyframe 0: one step an iteration; later ones: 2 frames, then 2 + 2 extra from iteration 1.
    assert [len([r for r in trace if r.keyframe == k]) for k in range(3)] == [3, 30, 30]


def test_fit_span_starts_from_the_given_keyframe_latent_and_factors(tiny: Any) -> None:
    from prompts.keyframe import Keyframe, compose_context

    fitter = _paper_fitter(tiny, later_iterations=2)
    span = fitter.spans[1]  # frames 1 and 2, interpolated from keyframe 0
    rng = np.random.default_rng(5)
    previous = Keyframe(0, quantize_tensor(rng.random((77, 1), np.float32)),
                        quantize_tensor(rng.random((1, 1024), np.float32)))  # fmt: skip
    x0 = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    state = FitState(keyframes=[previous], last_x0=x0)
    start = _starts(1)[0]
    trace: list[StepRecord] = []
    result = fitter.fit_span(span, state, start, trace.append)
    # Step 1 scores frame 1 on exactly this start: Q(U0), V0 half-way from the previous keyframe,
    # the group input mixed from the given latent.
    pu, pv = (torch.from_numpy(a) for a in previous.factors())
    qu, qv = (fake_quantize(torch.from_numpy(a)) for a in start)
    context = compose_context(0.5 * pu + 0.5 * qu, 0.5 * pv + 0.5 * qv)[None]
    with torch.no_grad():
        _, image = tiny.forward(fitter.unet_input(torch.from_numpy(x0)), context)
        target = torch.from_numpy(fitter.frames[1:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = fitter.loss(image.float(), target, context)[0]
    assert trace[0].frame == 1 and trace[0].loss == pytest.approx(float(expected), rel=1e-6)
    # The same start gives the same steps and keyframe; another start, other steps.
    again: list[StepRecord] = []
    assert fitter.fit_span(span, state, start, again.append).keyframe == result.keyframe
    assert [(r.frame, r.loss) for r in again] == [(r.frame, r.loss) for r in trace]
    other: list[StepRecord] = []
    fitter.fit_span(span, state, (start[0] * 0.5, start[1]), other.append)
    assert other[0].loss != trace[0].loss
    with pytest.raises(ValueError, match=r"initial factors of keyframe 1 are \(77, 2\)"):
        fitter.fit_span(span, state, (np.zeros((77, 2)), start[1]))
    batched = LevelFitter(fitter.gen, fitter.frames, x0, fitter.config, PRESETS["demo"],
                          fitter.loss)  # fmt: skip
    with pytest.raises(ValueError, match="step trace follows the sequential loop only"):
        batched.fit_span(span, state, start, trace.append)


def test_paper_preset_refuses_a_quality_target() -> None:
    with pytest.raises(ValueError, match="never stops early"):
        PRESETS["paper"].with_target(30.0)
    assert PRESETS["paper"].with_target(None) == PRESETS["paper"]


def test_running_range_quantiser_keeps_the_widest_range() -> None:
    running = RunningRange()
    x = torch.tensor([[0.2, -0.1], [0.4, 0.3]])
    running.update(x)
    running.update(x * 0.5)
    y = torch.tensor([[0.1, 0.0], [0.05, 0.2]])
    q = running.fake_quantize(y)
    assert running.value() == pytest.approx((-0.1, 0.4))
    assert torch.equal(q, torch.from_numpy(quantize_tensor(y, (-0.1, 0.4)).dequantize()))
    # Values outside a given range saturate at its ends.
    assert fake_quantize(torch.tensor([2.0]), torch.tensor(0.0), torch.tensor(1.0)).item() == 1.0


def _vgg19_file(
    path: Path, widths: tuple[int, ...] = (4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8)
) -> dict:
    rng = torch.Generator().manual_seed(0)
    state, cin = {}, 3
    for index, cout in zip(VGG19_CONV_INDICES, widths, strict=True):
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=rng) * 0.3
        state[f"features.{index}.bias"] = torch.randn(cout, generator=rng) * 0.1
        cin = cout
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_vgg19_term_reads_a_user_file_and_taps_before_relu(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"vgg19{suffix}"
    state = _vgg19_file(path)
    term = perceptual_term(f"vgg19:{path}")
    assert isinstance(term, VGG19PreReluLoss)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    features = term.features(image)
    assert len(features) == 16
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    first = torch.nn.functional.conv2d(
        (image - mean) / std, state["features.0.weight"], state["features.0.bias"], padding=1
    )
    torch.testing.assert_close(features[0], first)  # ImageNet statistics on [-1, 1], no ReLU
    assert (features[0] < 0).any()
    assert [f.shape[-1] for f in features] == [32] * 2 + [16] * 2 + [8] * 4 + [4] * 4 + [2] * 4
    other = torch.rand(2, 3, 32, 32) * 2 - 1
    loss = term(image, other)
    assert loss.shape == (2,) and (loss > 0).all()
    expected = torch.stack(
        [
            (a - b).pow(2).flatten(1).mean(1)
            for a, b in zip(features, term.features(other), strict=True)
        ]
    ).mean(0)
    torch.testing.assert_close(loss, expected)
    assert torch.equal(term(image, image), torch.zeros(2))


def test_vgg19_file_problems_are_named(tmp_path: Path) -> None:
    path = tmp_path / "vgg19.safetensors"
    state = _vgg19_file(path)
    del state["features.34.bias"]
    save_file(state, str(path))
    with pytest.raises(ValueError, match="lacks features.34.bias"):
        perceptual_term(f"vgg19:{path}")
    state = _vgg19_file(path)
    state["features.5.weight"] = torch.zeros(6, 5, 3, 3)
    save_file(state, str(path))
    with pytest.raises(ValueError, match="takes 5 channels"):
        perceptual_term(f"vgg19:{path}")
    with pytest.raises(ValueError, match="does not exist"):
        perceptual_term(f"vgg19:{tmp_path / 'missing.pth'}")


def test_paper_preset_refuses_to_run_without_vgg19_weights() -> None:
    with pytest.raises(
        ValueError, match="VGG19 term: pass --perceptual vgg19:PATH.*nothing is downloaded"
    ):
        check_perceptual(PRESETS["paper"], "ms-ssim")
    check_perceptual(PRESETS["paper"], "vgg19:/some/file.pth")
    check_perceptual(PRESETS["fast"], "ms-ssim")


def test_sd_vae_initial_latent_is_a_scaled_posterior_sample(tmp_path: Path) -> None:
    from authoring.initial import sd_vae_initial_latent
    from engines.ldm_layout import seeded_ldm_state
    from engines.model_configs import TINY_UNET, TINY_VAE
    from engines.sdturbo import load_vae

    path = tmp_path / "tiny_ldm.safetensors"
    save_file(seeded_ldm_state(TINY_UNET, TINY_VAE, seed=3, dtype=torch.float32), str(path))
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    latent = sd_vae_initial_latent(path, frame, seed=5, config_name=TINY_VAE)
    assert latent is not None and latent.shape == (1, 4, 8, 8) and latent.dtype == np.float32
    vae = load_vae(path, TINY_VAE)
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        posterior = vae.encode(image).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(
        latent, (0.18215 * (posterior.mean + posterior.std * noise)).numpy(), rtol=1e-5, atol=1e-6
    )
    assert np.array_equal(latent, sd_vae_initial_latent(path, frame, seed=5, config_name=TINY_VAE))
    assert not np.array_equal(
        latent, sd_vae_initial_latent(path, frame, seed=6, config_name=TINY_VAE)
    )
    unet_only = tmp_path / "unet_only.safetensors"
    save_file({k: v for k, v in seeded_ldm_state(TINY_UNET, TINY_VAE, 3, torch.float32).items()
               if k.startswith("model.")}, str(unet_only))  # fmt: skip
    assert sd_vae_initial_latent(unet_only, frame, config_name=TINY_VAE) is None


@pytest.mark.slow
def test_paper_preset_fits_a_chained_stream_that_decodes_to_the_fitted_frames(
    tmp_path: Path,
) -> None:
    from authoring.build import FitOptions, fit_level
    from authoring.levels import LevelSpec
    from authoring.planted import planted_clip
    from authoring.source import SourceVideo
    from engines import load_generator
    from prompts.ladder import split_into_chunks
    from prompts.manifest import StreamInfo

    torch.set_num_threads(1)
    gen = load_generator("tiny", device="cpu")
    frames, init = planted_clip(
        gen, 64, 6, 2, 2, seed=7, chunk_frames=4, prev_latent_rule="chained"
    )
    vgg = tmp_path / "vgg19.safetensors"
    _vgg19_file(vgg)
    options = FitOptions(
        preset=PRESETS["paper"].with_budgets(3, 2), perceptual=f"vgg19:{vgg}", seed=1
    )
    assert options.rule == "chained"
    starts = [(u.repeat(2, 1), v.repeat(2, 0)) for u, v in _starts(4)]  # rank 2
    trace: list[StepRecord] = []
    fitted = fit_level(
        gen, SourceVideo(frames, 2.0), init, LevelSpec(2, 2), 4, options, progress=False,
        initial=lambda span, _: starts[span.index] if span.index % 2 else None,  # None: default
        on_step=trace.append,
    )  # fmt: skip
    assert fitted.known.all()
    assert [s.iterations for s in fitted.state.stats] == [3, 2, 2, 2]
    # Keyframe 0: 3 iterations of one step; the others: their frames (2, 2, then the short last
    # interval's 1), then the same plus two more steps on the worst.
    assert [len([r for r in trace if r.keyframe == k]) for k in range(4)] == [3, 6, 6, 4]
    for k in (1, 3):  # the first Adam step moved the given start by at most the rate
        first = next(r for r in trace if r.keyframe == k)
        moved = (first.u - torch.from_numpy(starts[k][0])).abs().max().item()
        assert 0 < moved <= 0.1 * (1 + 1e-5)
    stream_info = StreamInfo(fps=2.0, width=64, height=64, frames=6, chunk_frames=4,
                             generator_id=gen.generator_id, generator_name=gen.name,
                             prev_latent_rule="chained")  # fmt: skip
    chunks = split_into_chunks(tuple(fitted.state.keyframes), stream_info, level=0, interval=2)
    stream = gen.open_stream(width=64, height=64, init_latent=init, prev_latent_rule="chained")
    decoded = np.concatenate([stream.decode_chunk(c) for c in chunks])
    assert np.array_equal(decoded, fitted.frames)


def test_closed_segments_refuse_the_release_stream_model() -> None:
    from authoring.build import BuildError, FitOptions
    from authoring.segments import check_segment_options

    with pytest.raises(BuildError, match="preset paper .* cannot be fitted in closed segments"):
        check_segment_options(FitOptions(preset=PRESETS["paper"], perceptual="vgg19:x.pth"))
    chunk_reset = FitOptions(
        preset=PRESETS["paper"], perceptual="vgg19:x.pth", prev_latent_rule="chunk-reset"
    )
    with pytest.raises(BuildError, match="initial latent sd-vae"):
        check_segment_options(chunk_reset)
    check_segment_options(FitOptions(preset=PRESETS["fast"]))
