"""The nano generator: shipped weights, identity, float32 only, and the exact unmixing of its input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import engines
from engines import load_generator
from engines.errors import WeightsFormatError
from engines.nano import NANO_WEIGHTS, load_nano
from engines.schedule import mix_latent, stream_noise, x0_from_eps
from engines.variants import NANO_LATENT
from prompts.keyframe import Keyframe
from prompts.ladder import split_into_chunks
from prompts.manifest import StreamInfo
from prompts.quant import quantize_tensor
from prompts.stream_model import NOISE_SEED, PREV_LATENT_WEIGHT


@pytest.fixture(scope="module")
def nano():  # type: ignore[no-untyped-def]
    return load_generator("nano", device="cpu")


def test_shipped_weights_are_small_and_named_by_their_hash(nano) -> None:
    from authoring.nano_prompt_encoder import PROMPT_ENCODER_WEIGHTS

    total = NANO_WEIGHTS.stat().st_size + PROMPT_ENCODER_WEIGHTS.stat().st_size
    assert total <= 8 * 2**20
    assert nano.generator_id == engines.NANO_GENERATOR_ID
    assert nano.native_size == (192, 192)
    assert nano.encoder is not None
    assert nano.latent_geometry == NANO_LATENT


def test_nano_runs_in_float32_whatever_dtype_is_asked(nano) -> None:
    assert nano.dtype == torch.float32
    assert load_generator("nano", device="cpu", dtype=torch.bfloat16).dtype == torch.float32


def test_the_unet_recovers_the_previous_latent_and_returns_its_x0(nano) -> None:
    """x0 through the shared rule equals the residual prediction on the unmixed previous latent."""
    rng = np.random.default_rng(0)
    prev = torch.from_numpy(rng.normal(0, 0.3, NANO_LATENT.shape(192, 192)).astype(np.float32))
    noise = torch.from_numpy(stream_noise(NOISE_SEED, 192, 192, NANO_LATENT))
    mixed = mix_latent(prev, noise, PREV_LATENT_WEIGHT).expand(3, -1, -1, -1)
    context = torch.from_numpy(rng.normal(0, 0.2, (3, 77, 1024)).astype(np.float32))
    unet = nano.backend.unet
    with torch.no_grad():
        assert torch.allclose(unet.unmix(mixed), prev.expand(3, -1, -1, -1), atol=1e-5)
        x0 = x0_from_eps(mixed, nano.backend.eps(mixed, context))
        direct = unet.predict_x0(prev.expand(3, -1, -1, -1), context)
    assert torch.allclose(x0, direct, atol=1e-4)


def test_a_stream_decodes_real_frames(nano) -> None:
    rng = np.random.default_rng(1)
    keyframes = [
        Keyframe(f, quantize_tensor(rng.random((77, 4))), quantize_tensor(rng.random((4, 1024))))
        for f in (0, 10)
    ]
    stream = StreamInfo(30.0, 192, 192, 11, 20, nano.generator_id, nano.name)
    (chunk,) = split_into_chunks(tuple(keyframes), stream, level=0, interval=10)
    init = nano.encode(torch.zeros(1, 3, 192, 192)).numpy()
    frames = nano.open_stream(width=192, height=192, init_latent=init).decode_chunk(chunk)
    assert frames.shape == (11, 192, 192, 3) and frames.dtype == np.uint8


def test_a_foreign_weight_file_is_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    bad = tmp_path / "nano.safetensors"
    save_file({"unet.conv_in.weight": torch.zeros(1)}, bad)
    with pytest.raises(WeightsFormatError, match="nano architecture"):
        load_nano(bad)


def test_frames_depend_on_the_prompt(nano) -> None:
    """The context is the carrier: other keyframe factors give another picture from the same
    previous latent (the first nano redrew its input whatever the prompt said)."""
    rng = np.random.default_rng(4)
    prev = torch.from_numpy(rng.normal(0, 0.5, NANO_LATENT.shape(64, 64)).astype(np.float32))
    contexts = torch.from_numpy(rng.normal(0, 0.5, (2, 77, 1024)).astype(np.float32))
    with torch.no_grad():
        x0 = nano.backend.unet.predict_x0(prev.expand(2, -1, -1, -1), contexts)
        images = nano.backend.decode(x0)
    assert (images[0] - images[1]).abs().mean() > 0.05
