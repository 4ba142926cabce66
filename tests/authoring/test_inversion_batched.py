"""The batched engine: frame subsets, the coarse phase, stacking, Adam, and the levers end to end."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from authoring.batched import (
    SUBSET_DRAWS,
    DeviceAdam,
    choose_frames,
    stack_problems,
    subset_draws,
)
from authoring.fit import FitState, LevelConfig, LevelFitter
from authoring.losses import FitLoss, LossWeights, perceptual_term
from authoring.presets import get_preset

torch.set_num_threads(1)


def test_device_adam_equals_torch_adam_per_problem() -> None:
    rng = torch.Generator().manual_seed(0)
    params = torch.rand(2, 5, 3, generator=rng)
    ours = params.clone()
    adam = DeviceAdam([ours])
    theirs = [params[i].clone().requires_grad_(True) for i in range(2)]
    optimisers = [torch.optim.Adam([p], lr=lr) for p, lr in zip(theirs, (0.1, 0.03), strict=True)]
    for _ in range(20):
        grad = torch.randn(2, 5, 3, generator=rng)
        adam.step([grad], torch.tensor([0.1, 0.03], dtype=torch.float64))
        for i, (p, optimiser) in enumerate(zip(theirs, optimisers, strict=True)):
            p.grad = grad[i].clone()
            optimiser.step()
    assert torch.equal(ours, torch.stack([p.detach() for p in theirs]))
    frozen = ours.clone()
    adam.step([torch.ones(2, 5, 3)], torch.tensor([0.0, 0.0], dtype=torch.float64))
    assert torch.equal(ours, frozen)


def test_frame_subsets_always_hold_the_worst_frame() -> None:
    rng = torch.Generator().manual_seed(1)
    for _ in range(50):
        scores = torch.rand(3, 10, generator=rng)
        worst = torch.randint(0, 10, (3,), generator=rng)
        chosen = choose_frames(scores, worst, 3)
        assert chosen.shape == (3, 3)
        for row, w in zip(chosen.tolist(), worst.tolist(), strict=True):
            assert w in row and len(set(row)) == 3
    # Before any worst frame is known (-1) the subset is just the highest scores.
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    assert sorted(choose_frames(scores, torch.tensor([-1]), 2)[0].tolist()) in ([1, 3], [0, 1])


def test_each_stacked_problem_draws_its_own_subsets() -> None:
    draws = subset_draws((3, 5, 3), 4)
    assert draws.shape == (SUBSET_DRAWS, 3, 4)
    assert torch.equal(draws[:, 1:2], subset_draws((5,), 4))  # as problem 1 draws alone
    assert torch.equal(draws[:, 0], draws[:, 2]) and not torch.equal(draws[:, 0], draws[:, 1])


@pytest.fixture(scope="module")
def setup() -> tuple[Any, np.ndarray, np.ndarray]:
    from authoring.planted import planted_clip
    from engines import load_generator

    gen = load_generator("tiny", device="cpu")
    frames, init = planted_clip(gen, 64, 7, 3, 2, seed=5)
    return gen, frames, init


def _fitter(setup: Any, **preset_changes: Any) -> LevelFitter:
    gen, frames, init = setup
    preset = dataclasses.replace(get_preset("demo").with_budgets(12, 8), **preset_changes)
    loss = FitLoss(perceptual_term("ms-ssim"), LossWeights())
    return LevelFitter(
        gen, frames, init, LevelConfig(rank=2, interval=3, chunk_frames=6, seed=2), preset, loss
    )


def test_coarse_problem_halves_everything_and_keeps_unit_noise(setup: Any) -> None:
    fitter = _fitter(setup)
    problem = fitter.problem(fitter.spans[0], FitState())
    coarse = problem.coarse()
    assert coarse.targets is not None and problem.targets is not None
    assert coarse.targets.shape[-2:] == (32, 32) and coarse.group_in.shape[-2:] == (4, 4)
    big = torch.randn(1, 4, 256, 256, generator=torch.Generator().manual_seed(0))
    wide = dataclasses.replace(problem, noise=big, group_in=0.95 * big, last_in=0.95 * big)
    assert wide.coarse().group_in.std().item() == pytest.approx(0.95, rel=0.03)
    assert wide.coarse().noise.std().item() == pytest.approx(1.0, rel=0.03)


def test_stacked_problems_carry_a_subset_seed_each(setup: Any) -> None:
    fitter = _fitter(setup)
    problem = fitter.problem(fitter.spans[0], FitState())
    assert problem.subset_seeds == (2,)  # the level's seed
    other = dataclasses.replace(problem, subset_seeds=(9,))
    assert stack_problems([problem, other, problem]).subset_seeds == (2, 9, 2)
    with pytest.raises(ValueError, match=r"one seed per stacked problem \(1\), got \(2, 9\)"):
        dataclasses.replace(problem, subset_seeds=(2, 9))


def test_stacked_problems_fit_as_they_would_alone(setup: Any) -> None:
    fitter = _fitter(setup)
    span = fitter.spans[0]
    problem = fitter.problem(span, FitState())
    u_a, v_a = (torch.from_numpy(a) for a in fitter.initial_factors(span, FitState()))
    u_b, v_b = u_a.flip(0).contiguous(), v_a.flip(1).contiguous()
    schedule = fitter.schedule(span, 6, 0.1, final=True)
    alone = [
        fitter.optimiser.run(problem, u[None], v[None], schedule, False)
        for u, v in ((u_a, v_a), (u_b, v_b))
    ]
    together = fitter.optimiser.run(
        stack_problems([problem, problem]), torch.stack([u_a, u_b]), torch.stack([v_a, v_b]),
        dataclasses.replace(schedule, lr=[0.1, 0.1]), False,
    )  # fmt: skip
    for i, result in enumerate(alone):
        # Batch size changes float rounding a little; the fits are otherwise independent.
        torch.testing.assert_close(together.u[i], result.u[0], rtol=0, atol=2e-3)
        torch.testing.assert_close(together.v[i], result.v[0], rtol=0, atol=2e-3)
        assert together.loss[i] == pytest.approx(result.loss[0], rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes",
    [{"frames_per_step": 2}, {"coarse_fraction": 0.5, "cosine": True}],
    ids=["subset", "coarse-cosine"],
)
def test_levers_keep_the_fit_exactly_reproducible(setup: Any, changes: dict) -> None:
    """Whatever the schedule, the stored keyframes decode to the very frames the fit reports."""
    from prompts.ladder import split_into_chunks
    from prompts.manifest import StreamInfo

    gen, frames, init = setup
    fitter = _fitter(setup, **changes)
    decoded = np.zeros_like(frames)

    def keep(_: FitState, result: Any) -> None:
        decoded[result.decoded_start : result.decoded_start + len(result.decoded)] = result.decoded

    state = fitter.fit(on_keyframe=keep)
    info = StreamInfo(fps=30.0, width=64, height=64, frames=7, chunk_frames=6,
                      generator_id=gen.generator_id, generator_name=gen.name)  # fmt: skip
    chunks = split_into_chunks(tuple(state.keyframes), info, level=0, interval=3)
    stream = gen.open_stream(width=64, height=64, init_latent=init)
    assert np.array_equal(np.concatenate([stream.decode_chunk(c) for c in chunks]), decoded)
    assert all(s.iterations == (12 if s.frame == 0 else 8) for s in state.stats)
