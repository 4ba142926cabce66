"""The paper preset: the release's loop checked by hand, its VGG19 term, quantiser, start and rule.

The hand-computed case: two frames, one-element factors, frame j scores (Q(u) - a_j)^2 with
a = (1, 0); u starts at 0.5. Adam's arithmetic is written out below (betas 0.9 / 0.999,
eps 1e-8) and the quantiser as the grid of its running range, so the expected trajectory
comes from the definitions, not from the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from authoring.losses import VGG19_CONV_INDICES, VGG19PreReluLoss, perceptual_term
from authoring.presets import PRESETS, check_perceptual
from authoring.sequential import RunningRange, SequentialFit
from prompts.quant import fake_quantize, quantize_tensor

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


def _toy_loss(offsets: list[float]) -> Any:
    calls = {"n": 0}

    def frame_loss(j: int, qu: torch.Tensor, qv: torch.Tensor) -> torch.Tensor:
        iteration = calls["n"] // (len(TARGETS) + 2)
        calls["n"] += 1
        return ((qu - TARGETS[j]) ** 2).sum() + ((qv - 0.25) ** 2).sum() + offsets[iteration]

    return frame_loss


def test_one_iteration_matches_the_hand_computed_sequence() -> None:
    fit = SequentialFit(_toy_loss([0.0, 10.0, 10.0]), frames=2, lr=0.1, record=True)
    result = fit.run(torch.tensor([[0.5]]), torch.tensor([[0.25]]), iterations=3)
    trace = result.trace
    # Iteration 1: frames 0 and 1 in order, then the worst (frame 1: 0.36 > 0.25) twice more.
    assert [(r.iteration, r.frame, r.worst_step) for r in trace[:4]] == [
        (0, 0, False), (0, 1, False), (0, 1, True), (0, 1, True),
    ]  # fmt: skip
    adam, u, high, expected = _Adam(0.1), 0.5, 0.0, []
    for frame in (0, 1, 1, 1):
        high = max(high, u)  # the running range grows with each forward, never shrinks
        q = _grid(u, high)
        expected.append((high, (q - TARGETS[frame]) ** 2))
        u = adam.step(u, 2 * (q - TARGETS[frame]))
        assert trace[len(expected) - 1].u.item() == pytest.approx(u, abs=2e-6)
    assert trace[1].u.item() == pytest.approx(0.6 - 0.0142945, abs=1e-6)  # checked on paper
    for record, (range_high, loss) in zip(trace[:4], expected, strict=True):
        assert record.u_range == pytest.approx((0.0, range_high), abs=1e-7)
        assert record.v_range == pytest.approx((0.0, 0.25))
        assert record.loss == pytest.approx(loss, abs=1e-5)
        assert record.lr == 0.1
    assert [r.adam_step for r in trace[:4]] == [1, 2, 3, 4]
    assert trace[0].u_range[1] == pytest.approx(0.5) and trace[3].u_range[1] == pytest.approx(0.6)
    # Iteration 1 is the best: the mean of its two sweep losses (0.25 and 0.36, taken at
    # different states of u), with the factors and range as they stood after its 4 steps.
    assert result.loss == pytest.approx((0.25 + 0.36) / 2, abs=1e-5)
    assert result.u.item() == pytest.approx(trace[3].u.item())
    assert result.u_range == pytest.approx(trace[3].u_range)
    # Iteration 2 brings no improvement (offset 10): iteration 3 runs at half the rate on a
    # fresh Adam, whose first step moves u by exactly lr in the gradient's sign.
    assert [r.lr for r in trace[4:8]] == [0.1] * 4 and [r.adam_step for r in trace[4:8]] == [
        5,
        6,
        7,
        8,
    ]
    assert [r.lr for r in trace[8:]] == [0.05] * 4 and [r.adam_step for r in trace[8:]] == [
        1,
        2,
        3,
        4,
    ]
    before = trace[7].u.item()
    q = _grid(before, trace[8].u_range[1])
    step = _Adam(0.05).step(before, 2 * (q - TARGETS[0]))
    assert trace[8].u.item() == pytest.approx(step, abs=2e-6)
    assert abs(trace[8].u.item() - before) == pytest.approx(0.05, abs=1e-6)
    assert result.lr == 0.025 and result.iterations == 3


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
    fitted = fit_level(
        gen, SourceVideo(frames, 2.0), init, LevelSpec(2, 2), 4, options, progress=False
    )
    assert fitted.known.all()
    assert [s.iterations for s in fitted.state.stats] == [3, 2, 2, 2]
    # Every keyframe started from torch.rand: none equals the warm start the others would get.
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
