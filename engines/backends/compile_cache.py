"""A persistent torch.compile (Inductor + Triton) cache, so a second start skips most compiling."""

from __future__ import annotations

import os
from pathlib import Path

COMPILE_CACHE_ENV = "PROMPTUS_COMPILE_CACHE"  # overrides the default cache folder
DEFAULT_COMPILE_CACHE = Path("~/.cache/promptus/inductor")


def compile_cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``configured``, else ``$PROMPTUS_COMPILE_CACHE``, else ~/.cache/promptus/inductor."""
    chosen = configured or os.environ.get(COMPILE_CACHE_ENV) or DEFAULT_COMPILE_CACHE
    return Path(chosen).expanduser().resolve()


def configure_compile_cache(configured: str | os.PathLike | None = None) -> Path:
    """Point Inductor's FX-graph, autotune and Triton kernel caches at one persistent folder.

    Inductor reads ``TORCHINDUCTOR_CACHE_DIR`` whenever it looks a cache up (Triton's kernels
    go to its ``triton/`` subfolder), so this must run before the first compile of the process.
    """
    import torch._inductor.config as inductor_config

    path = compile_cache_dir(configured)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    os.environ.setdefault("TRITON_CACHE_DIR", str(path / "triton"))
    inductor_config.fx_graph_cache = True  # compiled graphs keyed by graph + inputs + versions
    inductor_config.autotune_local_cache = True  # kernel choices (conv/matmul) stay decided
    return path
