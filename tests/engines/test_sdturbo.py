"""SD-Turbo loading: the single-file LDM loader is strict and offline; diffusers folders load too."""

from __future__ import annotations

import socket

import pytest
import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from safetensors.torch import save_file

from engines.errors import WeightsFormatError, WeightsNotFoundError
from engines.ldm_layout import seeded_ldm_state, unet_to_ldm, vae_to_ldm
from engines.model_configs import (
    SDTURBO_UNET,
    SDTURBO_VAE,
    TINY_UNET,
    TINY_VAE,
    architecture_config,
)
from engines.sdturbo import build_unet, build_vae, load_unet, load_vae
from engines.seeded import fill_seeded_


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test: loading must never reach a hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ldm") / "tiny_ldm.safetensors"
    save_file(seeded_ldm_state(TINY_UNET, TINY_VAE, seed=3, dtype=torch.float32), str(path))
    return path


def _meta_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        key: torch.empty(value.shape, device="meta") for key, value in module.state_dict().items()
    }


@pytest.mark.parametrize("config_name", [SDTURBO_UNET, TINY_UNET])
def test_unet_layout_round_trips_through_diffusers_converter(config_name):
    with torch.device("meta"):
        model = build_unet(config_name)
    state = _meta_state(model)
    back = convert_ldm_unet_checkpoint(
        unet_to_ldm(state, architecture_config(config_name)), architecture_config(config_name)
    )
    assert set(back) == set(state)
    assert all(back[key].shape == state[key].shape for key in state)


@pytest.mark.parametrize("config_name", [SDTURBO_VAE, TINY_VAE])
def test_vae_layout_round_trips_through_diffusers_converter(config_name):
    with torch.device("meta"):
        model = build_vae(config_name)
    state = _meta_state(model)
    back = convert_ldm_vae_checkpoint(
        vae_to_ldm(state, architecture_config(config_name)), architecture_config(config_name)
    )
    assert set(back) == set(state)
    assert all(back[key].shape == state[key].shape for key in state)


def test_single_file_loads_every_value(tiny_checkpoint, no_network):
    unet = load_unet(tiny_checkpoint, TINY_UNET)
    expected = fill_seeded_(build_unet(TINY_UNET), 3).state_dict()
    assert all(torch.equal(unet.state_dict()[key], value) for key, value in expected.items())
    vae = load_vae(tiny_checkpoint, TINY_VAE)
    expected_vae = fill_seeded_(build_vae(TINY_VAE), 3).state_dict()
    assert all(torch.equal(vae.state_dict()[key], value) for key, value in expected_vae.items())


def test_single_file_missing_key_is_refused(tmp_path, no_network):
    state = seeded_ldm_state(TINY_UNET, TINY_VAE, seed=3, dtype=torch.float32)
    del state["model.diffusion_model.out.2.weight"]
    save_file(state, str(tmp_path / "holey.safetensors"))
    with pytest.raises(WeightsFormatError, match="missing 1"):
        load_unet(tmp_path / "holey.safetensors", TINY_UNET)


def test_single_file_unused_key_is_refused(tmp_path, no_network):
    state = seeded_ldm_state(TINY_UNET, TINY_VAE, seed=3, dtype=torch.float32)
    state["model.diffusion_model.input_blocks.1.9.extra"] = torch.zeros(2)
    save_file(state, str(tmp_path / "extra.safetensors"))
    with pytest.raises(WeightsFormatError, match="unused|unexpected"):
        load_unet(tmp_path / "extra.safetensors", TINY_UNET)


def test_single_file_of_another_architecture_is_refused(tiny_checkpoint, no_network):
    with pytest.raises(WeightsFormatError):
        load_unet(tiny_checkpoint, SDTURBO_UNET)


def test_diffusers_folder(tmp_path, no_network):
    model = fill_seeded_(build_unet(TINY_UNET), 5)
    model.save_pretrained(tmp_path / "unet", safe_serialization=True)
    loaded = load_unet(tmp_path, TINY_UNET)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_missing_weights_name_path_and_source(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="sd_turbo.*stabilityai/sd-turbo") as error:
        load_unet(tmp_path / "sd_turbo.safetensors")
    assert str(tmp_path) in str(error.value)
    with pytest.raises(WeightsNotFoundError, match="diffusion_pytorch_model"):
        load_unet(tmp_path)


def test_checkpoint_without_unet_keys(tmp_path):
    save_file({"something.else": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(WeightsFormatError, match="model.diffusion_model"):
        load_unet(tmp_path / "x.safetensors", TINY_UNET)
