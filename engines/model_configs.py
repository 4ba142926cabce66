"""The JSON architecture configs shipped in engines/configs (no hub lookups, ever)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SDTURBO_UNET = "sdturbo_unet"
SDTURBO_VAE = "sdturbo_vae"
SDTURBO_SCHEDULER = "sdturbo_scheduler"
TAESD = "taesd"
TINY_UNET = "tiny_unet"
TINY_AUTOENCODER = "tiny_autoencoder"
TINY_VAE = "tiny_vae"
NANO_UNET = "nano_unet"
NANO_AUTOENCODER = "nano_autoencoder"


@cache
def _raw_config(name: str) -> str:
    path = resources.files("engines") / "configs" / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no shipped config named {name!r} (engines/configs/{name}.json)")
    return path.read_text(encoding="utf-8")


def load_config(name: str) -> dict[str, Any]:
    """A fresh copy of the shipped config ``engines/configs/<name>.json``."""
    return json.loads(_raw_config(name))


def architecture_config(name: str) -> dict[str, Any]:
    """The config without its ``_``-prefixed notes: what defines the architecture."""
    return {key: value for key, value in load_config(name).items() if not key.startswith("_")}
