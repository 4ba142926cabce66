"""TAESD from original-layout files (real weights from ../shared), .pth and diffusers folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from authoring.metrics import psnr_per_frame
from engines.errors import WeightsFormatError, WeightsNotFoundError
from engines.taesd import build_autoencoder_tiny, load_taesd, original_to_diffusers

MIN_ROUND_TRIP_PSNR = 25.0  # dB, encode+decode of a real 512x512 frame


def test_decoder_keys_shift_by_one():
    state = {"1.weight": torch.zeros(1), "3.conv.0.bias": torch.zeros(1)}
    assert set(original_to_diffusers(state, "decoder")) == {
        "layers.0.weight",
        "layers.2.conv.0.bias",
    }
    assert set(original_to_diffusers(state, "encoder")) == {
        "layers.1.weight",
        "layers.3.conv.0.bias",
    }
    with pytest.raises(WeightsFormatError):
        original_to_diffusers({"0.weight": torch.zeros(1)}, "decoder")


@pytest.mark.slow
def test_real_weights_round_trip_sky_frame(taesd_dir, sky_frames_dir):
    model = load_taesd(taesd_dir, need_encoder=True)
    frame = np.array(Image.open(sky_frames_dir / "00000.png").convert("RGB"))
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.inference_mode():
        latent = model.encoder(image)
        decoded = model.decoder(latent)
    assert latent.shape == (1, 4, 64, 64)
    restored = (
        ((decoded[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    )
    assert psnr_per_frame(restored[None], frame[None])[0] >= MIN_ROUND_TRIP_PSNR


def test_pth_and_diffusers_folder_load_the_same_values(taesd_dir, tmp_path):
    reference = load_taesd(taesd_dir, need_encoder=True)
    decoder_original = {
        f"{int(k.split('.')[1]) + 1}.{k.split('.', 2)[2]}": v
        for k, v in reference.decoder.state_dict().items()
    }
    torch.save(decoder_original, tmp_path / "taesd_decoder.pth")
    from_pth = load_taesd(tmp_path / "taesd_decoder.pth")
    assert from_pth.encoder is None
    assert all(
        torch.equal(from_pth.decoder.state_dict()[k], v)
        for k, v in reference.decoder.state_dict().items()
    )
    reference.save_pretrained(tmp_path / "diffusers", safe_serialization=True)
    from_folder = load_taesd(tmp_path / "diffusers")
    assert all(
        torch.equal(from_folder.state_dict()[k], v) for k, v in reference.state_dict().items()
    )


def test_missing_weights_name_path_and_source(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="taesd_decoder.*madebyollin/taesd") as error:
        load_taesd(tmp_path)
    assert str(tmp_path) in str(error.value)
    with pytest.raises(WeightsNotFoundError):
        load_taesd(tmp_path / "nowhere" / "taesd_decoder.safetensors")


def test_wrong_architecture_is_refused(tmp_path):
    torch.save({"1.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "taesd_decoder.pth")
    with pytest.raises(WeightsFormatError, match="size mismatch"):
        load_taesd(tmp_path)
    torch.save({"1.weight": torch.zeros(64, 4, 3, 3)}, tmp_path / "taesd_decoder.pth")
    with pytest.raises(WeightsFormatError, match="missing"):
        load_taesd(tmp_path)


def test_shipped_config_builds_taesd_sized_decoder():
    model = build_autoencoder_tiny()
    assert sum(p.numel() for p in model.decoder.parameters()) == 1_222_531
