"""Generation engines: SD-Turbo + TAESD and a tiny generator, weight loading, identity, backends.

Public API::

    gen = load_generator("tiny" | "tiny-taesd" | "sd-turbo" | "nano", weights=..., taesd=...,
                         device="auto", backend="torch", **switches)
    gen = generator_from_networks(name, networks, BackendOptions(...))   # engines.loaders
    gen.generator_id; gen.name; gen.native_size; gen.device
    x0, image = gen.forward(latent_input, context)          # differentiable
    stream = gen.open_stream(width=..., height=..., init_latent=..., noise_seed=NOISE_SEED,
                             prev_latent_weight=PREV_LATENT_WEIGHT, prev_latent_rule="chunk-reset")
    frames = stream.decode_chunk(chunk, prefix=None)        # uint8 [T, H, W, 3]

Heavy imports (torch, diffusers) happen on first use of these names, so importing the
package (for example for ``promptus.commands.generate.add_arguments``) stays cheap.
"""

from __future__ import annotations

from typing import Any

from engines.errors import WeightsFormatError, WeightsNotFoundError

# Recorded ids of the tiny variants (checked by tests/engines/test_identity.py). They change
# only when the tiny configs, TINY_WEIGHT_SEED, the seeding procedure or the TAESD file change.
TINY_GENERATOR_ID = "tiny:cf453d3083e17c42"
# The shipped nano weights (engines/weights/nano.safetensors); changes whenever they are retrained.
NANO_GENERATOR_ID = "nano:e0109e0bebabb793"
TINY_TAESD_GENERATOR_ID = (
    "tiny-taesd:dd571f578f45f6db"  # with ../shared/models/taesd (bf16, sha256 d903e7cc...)
)

_LAZY = {
    "load_generator": "engines.loaders",
    "generator_from_networks": "engines.loaders",
    "Generator": "engines.generator",
    "GeneratorStream": "engines.stream",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engines' has no attribute {name!r}")


__all__ = [
    "Generator",
    "GeneratorStream",
    "NANO_GENERATOR_ID",
    "TINY_GENERATOR_ID",
    "TINY_TAESD_GENERATOR_ID",
    "WeightsFormatError",
    "WeightsNotFoundError",
    "generator_from_networks",
    "load_generator",
]
