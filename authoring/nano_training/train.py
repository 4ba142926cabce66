"""Training the nano generator end to end: autoencoder, UNet step and prompt encoder together.

Each step samples short clips (random crops, flips, frame strides), encodes every frame, runs
the stream model over them (``stream_sim.simulate_stream``: keyframe factors from the prompt
encoder, 8-bit fake-quantised, nested ranks, interpolation between keyframes, the
previous-latent rule) and minimises

    MSE(generated frames, frames) + AUTOENCODER_WEIGHT * MSE(decoder(encoder(frames)), frames)
    + LATENT_WEIGHT * MSE(x0, encoder(frames))

so that the decoder reconstructs, the UNet continues a stream from its previous latent and the
prompt, and the x0 of a fitted prompt lies near the encoder's latent of its frame (what the
``demo`` preset's latent objective relies on). Runs are bounded in minutes and resume from a
checkpoint folder; ``export`` writes the shipped float16 weight files.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from authoring.losses import psnr_from_mse
from authoring.nano_prompt_encoder import PromptEncoder
from authoring.nano_training.stream_sim import simulate_stream
from authoring.source import frames_to_tensor
from engines.nano import (
    NanoAutoencoder,
    NanoUNet,
    build_nano_autoencoder,
    build_nano_unet,
    nano_state_dict,
)

AUTOENCODER_WEIGHT = 0.5
LATENT_WEIGHT = 0.1
LATENT_SIZE_WEIGHT = 1e-4  # keeps latents near unit scale (init states travel as float16)
INIT_SAME_FRAME, INIT_SAME_CLIP = (
    0.3,
    0.65,
)  # where a sample's init latent comes from (else another clip)
CHECKPOINT_MODEL, CHECKPOINT_STATE = "model.safetensors", "state.json"
OPTIMIZER_MOMENTS = ("exp_avg", "exp_avg_sq")


@dataclass
class TrainConfig:
    """What a training run does; saved with each checkpoint."""

    minutes: float = 3.0
    sizes: tuple[int, ...] = (
        128,
        128,
        192,
    )  # square crop, drawn per step (the networks are convolutional)
    batch: int = 24
    groups: int = 2  # keyframe intervals per sample (a sample is groups * interval + 1 frames)
    intervals: tuple[int, ...] = (10,)  # drawn per step
    ranks: tuple[int, ...] = (1, 2, 4, 8, 8, 16)  # drawn per step
    lr: float = 2e-3
    warmup_steps: int = 100
    seed: int = 0
    log_every_s: float = 20.0
    history: list[dict] = field(default_factory=list)


class ClipBank:
    """Training clips as uint8 tensors on the device, and the sampling of training examples."""

    def __init__(
        self, clips: dict[str, np.ndarray], device: torch.device, rng: random.Random
    ) -> None:
        self.clips = [torch.from_numpy(np.ascontiguousarray(f)).to(device) for f in clips.values()]
        self.names = list(clips)
        self.rng = rng

    def sample(self, batch: int, length: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(frames ``[B, length, 3, size, size]``, init frames ``[B, 3, size, size]``) in [-1, 1]."""
        clips, inits = [], []
        for _ in range(batch):
            stride = 2 if self.rng.random() < 0.25 else 1
            candidates = [c for c in self.clips if len(c) >= (length - 1) * stride + 1]
            if not candidates:
                stride, candidates = 1, [c for c in self.clips if len(c) >= length]
            # Clips are drawn by the square root of their length: long clips do not drown short ones.
            clip = self.rng.choices(candidates, weights=[math.sqrt(len(c)) for c in candidates])[0]
            start = self.rng.randrange(len(clip) - (length - 1) * stride)
            indices = torch.arange(length, device=clip.device) * stride + start
            draw = self.rng.random()
            if draw < INIT_SAME_FRAME:
                init_clip, init_index = clip, start
            elif draw < INIT_SAME_FRAME + INIT_SAME_CLIP:
                init_clip, init_index = clip, self.rng.randrange(len(clip))
            else:
                init_clip = self.rng.choice(self.clips)
                init_index = self.rng.randrange(len(init_clip))
            flip = self.rng.random() < 0.5
            clips.append(self._cut(clip[indices], *self._corner(clip, size), size, flip))
            init = init_clip[init_index : init_index + 1]
            inits.append(self._cut(init, *self._corner(init_clip, size), size, flip)[0])
        return torch.stack(clips), torch.stack(inits)

    def _corner(self, clip: torch.Tensor, size: int) -> tuple[int, int]:
        """(top, left) of a random ``size`` square inside the clip's frames."""
        return self.rng.randrange(clip.shape[1] - size + 1), self.rng.randrange(
            clip.shape[2] - size + 1
        )

    @staticmethod
    def _cut(frames: torch.Tensor, top: int, left: int, size: int, flip: bool) -> torch.Tensor:
        cut = frames_to_tensor(frames[:, top : top + size, left : left + size])
        return cut.flip(-1) if flip else cut


class NanoTrainer:
    """The three networks, their optimiser, the training loop, checkpoints and export."""

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        torch.manual_seed(config.seed)
        self.config = config
        self.device = device
        self.unet: NanoUNet = build_nano_unet().to(device).train()
        self.autoencoder: NanoAutoencoder = build_nano_autoencoder().to(device).train()
        self.prompts = PromptEncoder().to(device).train()
        self.optimizer = torch.optim.AdamW(
            self._named_parameters().values(), lr=config.lr, weight_decay=0.0
        )
        self.step = 0

    def _modules(self) -> dict[str, torch.nn.Module]:
        assert self.autoencoder.encoder is not None
        return {"unet": self.unet.core, "decoder": self.autoencoder.decoder,
                "encoder": self.autoencoder.encoder, "prompt": self.prompts}  # fmt: skip

    def _named_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {
            f"{name}.{key}": p
            for name, module in self._modules().items()
            for key, p in module.named_parameters()
        }

    def losses(
        self, frames: torch.Tensor, init_frames: torch.Tensor, rank: int, interval: int
    ) -> dict[str, torch.Tensor]:
        """The training objective's terms for one batch (``total`` is what is minimised)."""
        encoder, decoder = self.autoencoder.encoder, self.autoencoder.decoder
        assert encoder is not None
        batch, length = frames.shape[:2]
        latents = encoder(frames.flatten(0, 1))
        init = encoder(init_frames)
        reconstruction = decoder(latents)
        latents = latents.view(batch, length, *latents.shape[1:])
        stream = simulate_stream(
            self.unet, decoder, self.prompts, latents, init, rank=rank, interval=interval
        )
        terms = {
            "stream": F.mse_loss(stream.images.float(), frames),
            "autoencoder": F.mse_loss(reconstruction.float().view_as(frames), frames),
            "latent": F.mse_loss(stream.x0.float(), latents.detach().float()),
            "latent_size": latents.float().pow(2).mean(),
        }
        terms["total"] = (terms["stream"] + AUTOENCODER_WEIGHT * terms["autoencoder"]
                          + LATENT_WEIGHT * terms["latent"] + LATENT_SIZE_WEIGHT * terms["latent_size"])  # fmt: skip
        return terms

    def _learning_rate(self, fraction: float) -> float:
        warmup = min(1.0, (self.step + 1) / self.config.warmup_steps)
        return self.config.lr * warmup * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))

    def train(self, bank: ClipBank, evaluate=None, log=print) -> None:
        """Train for ``config.minutes`` of wall time; ``evaluate()`` (-> dict) runs at each log line."""
        config = self.config
        rng = random.Random(config.seed + self.step)
        started = last_log = time.monotonic()
        budget = config.minutes * 60
        running: dict[str, float] = {}
        while (elapsed := time.monotonic() - started) < budget:
            interval, rank, size = (
                rng.choice(config.intervals),
                rng.choice(config.ranks),
                rng.choice(config.sizes),
            )
            frames, init_frames = bank.sample(config.batch, config.groups * interval + 1, size)
            with torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
            ):
                terms = self.losses(frames, init_frames, rank, interval)
            for group in self.optimizer.param_groups:
                group["lr"] = self._learning_rate(elapsed / budget)
            self.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(self._named_parameters().values(), 1.0)
            self.optimizer.step()
            self.step += 1
            for key, value in terms.items():
                value = float(value.detach())
                running[key] = 0.9 * running.get(key, value) + 0.1 * value
            if time.monotonic() - last_log >= config.log_every_s or self.step == 1:
                last_log = time.monotonic()
                row = {"step": self.step, "minutes": round(elapsed / 60, 2), "lr": self._learning_rate(elapsed / budget),
                       "stream_psnr": _psnr(running["stream"]), "autoencoder_psnr": _psnr(running["autoencoder"]),
                       **{k: round(v, 5) for k, v in running.items()}}  # fmt: skip
                if evaluate is not None:
                    row |= evaluate()
                config.history.append(row)
                log(json.dumps(row))

    def evaluate_clip(
        self, frames: torch.Tensor, *, rank: int = 8, interval: int = 10, chunk_frames: int = 30
    ) -> float:
        """PSNR (dB) of the prompt encoder's factors, without refinement, over one held-out clip
        ``[T, 3, S, S]`` in [-1, 1] streamed from its frame 0 (init latent) in chunks."""
        images = self.generated_clip(
            frames, rank=rank, interval=interval, chunk_frames=chunk_frames
        )
        return _psnr(F.mse_loss(images.clamp(-1, 1), frames).item())

    @torch.no_grad()
    def generated_clip(
        self, frames: torch.Tensor, *, rank: int = 8, interval: int = 10, chunk_frames: int = 30
    ) -> torch.Tensor:
        """The frames ``[T, 3, S, S]`` regenerated from the prompt encoder's factors (see ``evaluate_clip``)."""
        modules = self._modules()
        for module in modules.values():
            module.eval()
        try:
            encoder = self.autoencoder.encoder
            assert encoder is not None
            latents = encoder(frames)[None]
            stream = simulate_stream(self.unet, self.autoencoder.decoder, self.prompts, latents, latents[:, 0],
                                     rank=rank, interval=interval, chunk_frames=chunk_frames)  # fmt: skip
        finally:
            for module in modules.values():
                module.train()
        return stream.images[0].float()

    def save(self, folder: Path) -> None:
        """Checkpoint: float32 weights, Adam moments (two files) and the config with its history."""
        folder.mkdir(parents=True, exist_ok=True)
        parameters = self._named_parameters()
        save_file(
            {k: v.detach().float().cpu().contiguous() for k, v in parameters.items()},
            folder / CHECKPOINT_MODEL,
        )
        for moment in OPTIMIZER_MOMENTS:
            tensors = {k: self.optimizer.state[p][moment].cpu().contiguous()
                       for k, p in parameters.items() if p in self.optimizer.state}  # fmt: skip
            save_file(tensors, folder / f"adam_{moment}.safetensors")
        state = {"step": self.step, "config": asdict(self.config)}
        (folder / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1))

    def load(self, folder: Path) -> None:
        """Continue from a checkpoint written by ``save`` (weights, Adam moments, step count)."""
        parameters = self._named_parameters()
        weights = load_file(folder / CHECKPOINT_MODEL)
        with torch.no_grad():
            for key, parameter in parameters.items():
                parameter.copy_(weights[key])
        moments = {
            m: load_file(folder / f"adam_{m}.safetensors")
            for m in OPTIMIZER_MOMENTS
            if (folder / f"adam_{m}.safetensors").is_file()
        }
        state = json.loads((folder / CHECKPOINT_STATE).read_text())
        if len(moments) == len(OPTIMIZER_MOMENTS):
            for key, parameter in parameters.items():
                if key in moments["exp_avg"]:
                    self.optimizer.state[parameter] = {
                        "step": torch.tensor(float(state["step"])),
                        **{m: moments[m][key].to(self.device) for m in OPTIMIZER_MOMENTS},
                    }
        self.step = state["step"]
        self.config.history = state["config"].get("history", [])

    def export(self, generator_file: Path, prompt_encoder_file: Path) -> None:
        """The shipped weight files, float16: the generator's and the prompt encoder's."""

        def half(state):
            return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in state.items()}

        generator_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_encoder_file.parent.mkdir(parents=True, exist_ok=True)
        save_file(half(nano_state_dict(self.unet, self.autoencoder)), generator_file)
        save_file(half(self.prompts.state_dict()), prompt_encoder_file)


def _psnr(mse: float) -> float:
    """PSNR in dB of an MSE between images in [-1, 1], rounded and finite (for the history)."""
    return round(psnr_from_mse(max(mse, 1e-12)), 3)
