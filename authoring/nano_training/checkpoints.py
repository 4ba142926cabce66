"""A nano training run's checkpoint folder: written after a run, resumed by the next.

The folder holds the float32 weights (``model.safetensors``), Adam's two moments
(``adam_exp_avg.safetensors``, ``adam_exp_avg_sq.safetensors``) and ``state.json`` (the step
count and the config with its history and minutes done). A checkpoint of a smaller architecture
resumes too: the tensors it lacks (blocks added since, which start as the identity) keep
torch's initial values and are named on stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from authoring.nano_training.train import NanoTrainer

CHECKPOINT_MODEL, CHECKPOINT_STATE = "model.safetensors", "state.json"
OPTIMIZER_MOMENTS = ("exp_avg", "exp_avg_sq")


def save_checkpoint(trainer: NanoTrainer, folder: Path) -> None:
    """Checkpoint: float32 weights, Adam moments (two files) and the config with its history."""
    folder.mkdir(parents=True, exist_ok=True)
    parameters = trainer.named_parameters()
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in parameters.items()},
        folder / CHECKPOINT_MODEL,
    )
    optimizer = trainer.optimizer
    for moment in OPTIMIZER_MOMENTS:
        tensors = {k: optimizer.state[p][moment].cpu().contiguous()
                   for k, p in parameters.items() if p in optimizer.state}  # fmt: skip
        save_file(tensors, folder / f"adam_{moment}.safetensors")
    state = {"step": trainer.step, "config": asdict(trainer.config)}
    (folder / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1))


def resume_checkpoint(trainer: NanoTrainer, folder: Path) -> None:
    """Continue from a checkpoint written by ``save_checkpoint`` (weights, Adam moments, step
    count, minutes trained). Tensors the checkpoint lacks (an architecture grown since) start
    from torch's initial values and are named on stderr."""
    parameters = trainer.named_parameters()
    weights = load_file(folder / CHECKPOINT_MODEL)
    fresh = [k for k, p in parameters.items() if k not in weights or weights[k].shape != p.shape]
    if len(fresh) == len(parameters):
        raise ValueError(f"{folder} holds no weight of this architecture")
    with torch.no_grad():
        for key, parameter in parameters.items():
            if key not in fresh:
                parameter.copy_(weights[key])
    if fresh:  # the architecture grew since the checkpoint: these start from torch's init
        print(f"{len(fresh)} tensors start fresh: {', '.join(fresh)}", file=sys.stderr)
    moments = {
        m: load_file(folder / f"adam_{m}.safetensors")
        for m in OPTIMIZER_MOMENTS
        if (folder / f"adam_{m}.safetensors").is_file()
    }
    state = json.loads((folder / CHECKPOINT_STATE).read_text())
    if len(moments) == len(OPTIMIZER_MOMENTS):
        for key, parameter in parameters.items():
            if key in moments["exp_avg"] and key not in fresh:
                trainer.optimizer.state[parameter] = {
                    "step": torch.tensor(float(state["step"])),
                    **{m: moments[m][key].to(trainer.device) for m in OPTIMIZER_MOMENTS},
                }
    trainer.step = state["step"]
    trainer.config.history = state["config"].get("history", [])
    trainer.config.elapsed_minutes = state["config"].get("elapsed_minutes", 0.0)
