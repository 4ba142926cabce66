"""What the benchmark scripts share: how a run records its command and software, names its
output file after the card, and writes its JSON document.

A plain module beside the scripts (each runs as ``python scripts/<name>.py``, which puts
``scripts/`` on the import path): benchmark bookkeeping has no use in the shipped packages, and
scripts may import from every floor (never from ``tests/``). The card's name is
``engines.devices.card_name``; small valid chunks, keyframes, init states and ladders are
``prompts.testing``, a fixture stream's open and malformed HTTP requests ``wire.testing``; frame
agreement is ``engines.psnr``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_json


def command_line(argv: list[str] | None = None) -> str:
    """``python scripts/<name>.py ARGS``: how to run this benchmark again (``argv``: its arguments)."""
    arguments = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"scripts/{Path(sys.argv[0]).name}", *arguments])


def software() -> dict[str, Any]:
    """The torch and CUDA versions the run used."""
    import torch

    return {"torch": torch.__version__, "cuda": torch.version.cuda}


def card_slug(card: str) -> str:
    """A card's name as a file-name part: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", card.lower()).strip("-")


def write_document(path: Path, document: Any, *, quiet: bool = False) -> None:
    """The run's JSON document at ``path``, its folder made, written atomically (a reader, or an
    interrupted run, never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, document)
    if not quiet:
        print(f"wrote {path}")
