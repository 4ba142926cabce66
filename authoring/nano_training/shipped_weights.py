"""The nano training's shipped weight files (float16, no optimiser state): exported after a run
(the generator's ``engines/weights/nano.safetensors`` and the prompt encoder's
``authoring/weights/nano_prompt_encoder.safetensors``), and read back by a later session, whose
run continues the last one's training from them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from authoring.nano_training.train import NanoTrainer
from engines.nano import load_nano_state, nano_state_dict
from engines.weight_files import read_state_dict


def load_shipped_weights(
    trainer: NanoTrainer, generator_file: Path, prompt_encoder_file: Path
) -> None:
    """Start from shipped weight files (float16; no optimiser state): a new session's run
    continues the last one's training from what it exported."""
    load_nano_state(
        trainer.unet, trainer.autoencoder, read_state_dict(generator_file), generator_file
    )
    prompt_state = {k: v.float() for k, v in read_state_dict(prompt_encoder_file).items()}
    trainer.prompts.load_state_dict(prompt_state, strict=True)


def export_shipped_weights(
    trainer: NanoTrainer, generator_file: Path, prompt_encoder_file: Path
) -> None:
    """The shipped weight files, float16: the generator's and the prompt encoder's."""

    def half(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in state.items()}

    generator_file.parent.mkdir(parents=True, exist_ok=True)
    prompt_encoder_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(half(nano_state_dict(trainer.unet, trainer.autoencoder)), generator_file)
    save_file(half(trainer.prompts.state_dict()), prompt_encoder_file)
