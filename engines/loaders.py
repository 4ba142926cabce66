"""One loader per generator of ``engines.variants``, and the one way from networks to a generator.

A loader turns local weight files into ``Networks`` (UNet, decoder, optional TAESD encoder);
``generator_from_networks`` computes the generator id from them (``generator_id_of``: the
variant's architecture configs and every weight, whoever made the networks), applies the
variant's precision and layout rules, and builds the backend the options name::

    networks = load_sd_turbo(weights="sd_turbo.safetensors", taesd="models/taesd")
    options = BackendOptions(device="cuda", dtype=torch.float16, backend=FastTorchOptions())
    generator = generator_from_networks("sd-turbo", networks, options)

    # benchmarks: the real architecture with seeded random weights, identified by the same rule
    networks = random_networks("sd-turbo", seed=0, device="cuda")
    generator = generator_from_networks("sd-turbo", networks, options)

``load_generator`` is the flat form every command uses: a loader from ``LOADERS`` by name,
``backend_options`` from the command-line switches, then ``generator_from_networks``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, Unpack

import torch
from torch import nn

from engines.backends import (
    BackendFlags,
    BackendOptions,
    TorchOptions,
    backend_options,
    make_backend,
)
from engines.devices import default_dtype, resolve_device
from engines.errors import WeightsNotFoundError
from engines.generator import Generator
from engines.identity import compute_generator_id
from engines.model_configs import architecture_config
from engines.seeded import fill_random_, fill_seeded_
from engines.taesd import TAESD_HOW_TO_OBTAIN, build_autoencoder_tiny, load_taesd
from engines.variants import VARIANTS, Variant

TINY_WEIGHT_SEED = 20260  # fixed seed of the tiny generator's weights (engines.seeded)
SD_SHAPED = ("tiny", "tiny-taesd", "sd-turbo")  # a diffusers UNet and a TAESD-shaped autoencoder

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Networks:
    """A generator's networks, before any backend holds them."""

    unet: nn.Module
    decoder: nn.Module
    encoder: nn.Module | None = None  # the TAESD-shaped encoder, where there is one


class Autoencoder(Protocol):
    """What a generator takes of an autoencoder (TAESD's or nano's): the decoder, and the encoder
    unless it was dropped."""

    @property
    def decoder(self) -> nn.Module: ...

    @property
    def encoder(self) -> nn.Module | None: ...


def _variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown generator {name!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def _from_autoencoder(unet: nn.Module, autoencoder: Autoencoder) -> Networks:
    return Networks(unet, autoencoder.decoder, autoencoder.encoder)


def seeded_networks(name: str, seed: int) -> Networks:
    """The variant's architecture with machine-independent seeded weights (``engines.seeded``)."""
    from engines.sdturbo import build_unet

    variant = _variant(name)
    unet = fill_seeded_(build_unet(variant.unet_config), seed)
    return _from_autoencoder(
        unet, fill_seeded_(build_autoencoder_tiny(variant.decoder_config), seed)
    )


def random_networks(name: str, seed: int = 0, device: str = "cpu") -> Networks:
    """The variant's architecture built on ``device`` with random weights from ``seed``.

    The distributions of ``engines.seeded`` (so pictures depend on the prompt), drawn with
    torch's generator on the device rather than with numpy on the CPU (SD-Turbo has 865M
    weights): the same values on every device of one kind. For benchmarks: speed does not
    depend on the values.
    """
    from engines.sdturbo import build_unet

    variant = _variant(name)
    if name not in SD_SHAPED:
        raise ValueError(f"random weights are for {', '.join(SD_SHAPED)}, not {name!r}")
    with torch.device(device):
        unet, autoencoder = (
            build_unet(variant.unet_config),
            build_autoencoder_tiny(variant.decoder_config),
        )
    rng = torch.Generator(device).manual_seed(seed)
    for module in (unet, autoencoder.decoder, autoencoder.encoder):
        fill_random_(module, rng)
    return _from_autoencoder(unet, autoencoder)


def load_tiny() -> Networks:
    """``tiny``: the tiny UNet and autoencoder with their recorded seeded weights."""
    return seeded_networks("tiny", TINY_WEIGHT_SEED)


def load_tiny_taesd(taesd: str | Path | None) -> Networks:
    """``tiny-taesd``: the tiny seeded UNet and the real TAESD from its folder."""
    if taesd is None:
        raise WeightsNotFoundError("<--taesd not given>", TAESD_HOW_TO_OBTAIN)
    autoencoder = load_taesd(taesd)
    return _from_autoencoder(load_tiny().unet, autoencoder)


def load_sd_turbo(weights: str | Path | None, taesd: str | Path | None) -> Networks:
    """``sd-turbo``: the SD-Turbo UNet from its checkpoint and the real TAESD from its folder."""
    from engines.sdturbo import SDTURBO_HOW_TO_OBTAIN, load_unet

    if taesd is None:
        raise WeightsNotFoundError("<--taesd not given>", TAESD_HOW_TO_OBTAIN)
    autoencoder = load_taesd(taesd)
    if weights is None:
        raise WeightsNotFoundError("<--weights not given>", SDTURBO_HOW_TO_OBTAIN)
    return _from_autoencoder(load_unet(weights), autoencoder)


def load_nano_networks() -> Networks:
    """``nano``: the step and decoder trained here, from the shipped weights."""
    from engines.nano import load_nano

    return _from_autoencoder(*load_nano())


# name -> loader of (--weights, --taesd): one per engines.variants.VARIANTS entry
LOADERS: dict[str, Callable[[str | Path | None, str | Path | None], Networks]] = {
    "tiny": lambda weights, taesd: load_tiny(),
    "tiny-taesd": lambda weights, taesd: load_tiny_taesd(taesd),
    "sd-turbo": load_sd_turbo,
    "nano": lambda weights, taesd: load_nano_networks(),
}


def generator_id_of(name: str, networks: Networks) -> str:
    """``"<family>:<hex>"``: the variant's architecture configs and the UNet's and decoder's weights."""
    variant = _variant(name)
    return compute_generator_id(
        variant.family,
        {
            "unet": architecture_config(variant.unet_config),
            "decoder": architecture_config(variant.decoder_config),
        },
        {"unet": networks.unet, "decoder": networks.decoder},
    )


def variant_options(variant: Variant, options: BackendOptions) -> BackendOptions:
    """``options`` under the variant's rules: float32 for a float32-only one, channels-last
    for one that runs so (where the backend takes that switch)."""
    if variant.float32_only:
        options = replace(options, dtype=torch.float32)
    if variant.channels_last and isinstance(options.backend, TorchOptions):
        options = replace(options, backend=replace(options.backend, channels_last=True))
    return options


def generator_from_networks(name: str, networks: Networks, options: BackendOptions) -> Generator:
    """The generator ``name`` made of ``networks``, run as ``options`` say (its id keys the caches)."""
    variant = _variant(name)
    started = time.perf_counter()
    generator_id = generator_id_of(name, networks)  # before a backend casts or fuses weights
    log.info(
        "generator id %s (weights hashed in %.1f s)", generator_id, time.perf_counter() - started
    )
    options = replace(variant_options(variant, options), cache_key=generator_id)
    encoder = networks.encoder
    if encoder is not None:
        encoder = encoder.float().eval().requires_grad_(False)
    return Generator(
        variant=variant,
        generator_id=generator_id,
        backend=make_backend(networks.unet, networks.decoder, options),
        encoder=encoder,
    )


def load_generator(
    name: str,
    *,
    weights: str | Path | None = None,
    taesd: str | Path | None = None,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    backend: str = "torch",
    **flags: Unpack[BackendFlags],
) -> Generator:
    """The generator ``name`` from local files only, run by ``backend`` with its ``flags``.

    ``backend`` is ``torch``, ``fast``, ``tensorrt`` or ``auto``; ``flags`` are the command-line
    switches (``engines.backends.BackendFlags``: channels-last, CUDA graph, compile mode, fp8,
    compile cache, ahead-of-time, max batch), each going to the backend it belongs to.
    """
    variant = _variant(name)
    networks = LOADERS[name](weights, taesd)
    resolved = resolve_device(device)
    # ``auto`` resolves on the precision and switches the variant imposes (variant_options):
    # a float32-only or channels-last variant runs the eager torch backend.
    dtype = torch.float32 if variant.float32_only else dtype or default_dtype(resolved)
    if variant.channels_last:
        flags["channels_last"] = True
    options = backend_options(backend, device=resolved, dtype=dtype, **flags)
    return generator_from_networks(name, networks, options)
