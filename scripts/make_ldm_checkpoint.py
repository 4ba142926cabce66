"""Write a seeded random checkpoint in SD-Turbo's single-file LDM layout (not SD-Turbo's weights).

    python scripts/make_ldm_checkpoint.py OUT.safetensors --size tiny    # a few MB, for tests
    python scripts/make_ldm_checkpoint.py OUT.safetensors --size full    # SD-Turbo-sized, ~3.8 GB fp32

It proves the single-file loader (``engines.sdturbo.load_unet``/``load_vae``) where the real
``sd_turbo.safetensors`` cannot be had: same key names and shapes, values from a fixed seed.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from safetensors.torch import save_file

from engines.ldm_layout import seeded_ldm_state
from engines.model_configs import SDTURBO_UNET, SDTURBO_VAE, TINY_UNET, TINY_VAE

SIZES = {"tiny": (TINY_UNET, TINY_VAE), "full": (SDTURBO_UNET, SDTURBO_VAE)}
DTYPES = {"float32": torch.float32, "float16": torch.float16}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output .safetensors path")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    unet_config, vae_config = SIZES[args.size]
    state = seeded_ldm_state(unet_config, vae_config, args.seed, DTYPES[args.dtype])
    metadata = {
        "format": "pt",
        "promptus": f"seeded random LDM-layout checkpoint ({args.size}, seed {args.seed}); not SD-Turbo",
    }
    save_file(state, args.out, metadata=metadata)
    params = sum(t.numel() for t in state.values())
    print(
        f"wrote {args.out}: {len(state)} tensors, {params / 1e6:.1f}M parameters, "
        f"{args.dtype}, {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
