"""Training the nano generator end to end: autoencoder, step and prompt encoder together.

Each step samples short clips (random crops, flips, time reversal, frame strides, colour gains),
encodes every frame, runs the stream model over them (``stream_sim.simulate_stream``: keyframe
factors from the prompt encoder, 8-bit fake-quantised, each clip at its own nested rank,
interpolation between keyframes, the previous-latent rule) and minimises

    MSE(generated frames, frames) + AUTOENCODER_WEIGHT * MSE(decoder(encoder(frames)), frames)
    + LATENT_WEIGHT * MSE(x0, encoder(frames))

so that the decoder reconstructs, the step draws each frame from the prompt and the previous
latent, and the x0 of a fitted prompt lies near the encoder's latent of its frame (what the
``demo`` preset's latent objective relies on).

The shortcut that ruined the first run (the step redrew the stream's start latent and the
prompt carried nothing) is trained against directly: a clip's init latent is mostly another
clip's frame or a distant frame of its own (``clip_bank.INIT_SOURCES``), as a chunk start in a real stream
is, so only the prompt can say what the first frames show; every rank is trained in every batch,
so each rank's extra maps must add detail.

Runs are bounded in minutes; the learning-rate schedule spans ``schedule_minutes`` across runs
(the checkpoint records the minutes done), so a run split over several device calls follows one
cosine. A run resumes from a checkpoint folder (weights and Adam moments; ``checkpoints``) or
from the shipped float16 weight files alone, which ``shipped_weights`` also writes.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.nn import functional as F

from authoring.losses import psnr_from_mse
from authoring.nano_prompt_encoder import PromptEncoder
from authoring.nano_training.clip_bank import ClipBank
from authoring.nano_training.schedule import learning_rate
from authoring.nano_training.stream_sim import simulate_stream
from authoring.nano_training.train_config import TrainConfig
from engines.nano import NanoAutoencoder, NanoUNet, build_nano_autoencoder, build_nano_unet

AUTOENCODER_WEIGHT = 0.5
LATENT_WEIGHT = 0.1
LATENT_SIZE_WEIGHT = 1e-4  # keeps latents near unit scale (init states travel as float16)
AUTOENCODER_FRAMES = 8  # frames per clip while the autoencoder trains alone


class NanoTrainer:
    """The three networks (step, autoencoder, prompt encoder), their optimiser, the objective and
    the training loop. Its checkpoints are ``checkpoints``, its shipped files ``shipped_weights``,
    its held-out scores ``heldout``."""

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        torch.manual_seed(config.seed)
        self.config = config
        self.device = device
        self.unet: NanoUNet = build_nano_unet().to(device).train()
        self.autoencoder: NanoAutoencoder = build_nano_autoencoder().to(device).train()
        self.prompts = PromptEncoder().to(device).train()
        if config.channels_last:
            for module in self.modules().values():
                # torch's overloads of Module.to omit memory_format, which it takes at run time
                module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optimizer = torch.optim.AdamW(
            self.named_parameters().values(), lr=config.lr, weight_decay=0.0
        )
        self.step = 0
        self._fresh_adam_step = 0

    def modules(self) -> dict[str, torch.nn.Module]:
        """The four trained networks by name (the prefixes of the checkpoint's keys)."""
        assert self.autoencoder.encoder is not None
        return {"unet": self.unet.core, "decoder": self.autoencoder.decoder,
                "encoder": self.autoencoder.encoder, "prompt": self.prompts}  # fmt: skip

    def named_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Every trained parameter as ``network.key`` (the checkpoint's names)."""
        return {
            f"{name}.{key}": p
            for name, module in self.modules().items()
            for key, p in module.named_parameters()
        }

    def layout(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` in the networks' memory format (channels-last images when configured)."""
        if self.config.channels_last and tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def losses(
        self,
        frames: torch.Tensor,
        init_frames: torch.Tensor,
        ranks: torch.Tensor,
        interval: int,
        *,
        stream: bool = True,
    ) -> dict[str, torch.Tensor]:
        """The training objective's terms for one batch (``total`` is what is minimised);
        ``stream=False`` trains the autoencoder alone."""
        encoder, decoder = self.autoencoder.encoder, self.autoencoder.decoder
        assert encoder is not None
        batch, length = frames.shape[:2]
        flat = self.layout(frames.flatten(0, 1))
        latents = encoder(flat)
        reconstruction = decoder(latents)
        terms = {
            "autoencoder": F.mse_loss(reconstruction.float(), flat),
            "latent_size": latents.float().pow(2).mean(),
        }
        if not stream:
            terms["total"] = terms["autoencoder"] + LATENT_SIZE_WEIGHT * terms["latent_size"]
            return terms
        # The autoencoder learns from its own term alone: the stream reads its latents and
        # decodes through it with its weights held, so the step and the prompt encoder learn
        # to reach its latent space instead of bending it (and its ceiling stays measurable).
        with torch.no_grad():
            init = encoder(self.layout(init_frames))
        latents = latents.detach().view(batch, length, *latents.shape[1:])
        simulated = simulate_stream(
            self.unet, _held(decoder), self.prompts, latents, init, ranks=ranks, interval=interval
        )
        terms["stream"] = F.mse_loss(simulated.images.float(), frames)
        terms["latent"] = F.mse_loss(simulated.x0.float(), latents.float())
        terms["total"] = (terms["stream"] + AUTOENCODER_WEIGHT * terms["autoencoder"]
                          + LATENT_WEIGHT * terms["latent"] + LATENT_SIZE_WEIGHT * terms["latent_size"])  # fmt: skip
        return terms

    def learning_rate(self, minutes_done: float) -> float:
        """This step's rate (``schedule.learning_rate``)."""
        return learning_rate(self.config, self.step - self._fresh_adam_step, minutes_done)

    def train(
        self,
        bank: ClipBank,
        evaluate: Callable[[], dict] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        """Train for ``config.minutes`` of wall time; ``evaluate()`` (-> dict) runs at each log line."""
        from tqdm import tqdm

        config = self.config
        rng = random.Random(config.seed + self.step)
        started = last_log = time.monotonic()
        budget = config.minutes * 60
        running: dict[str, float] = {}
        bar = tqdm(total=round(budget), unit="s", desc="nano training", file=sys.stderr,
                   mininterval=10.0, bar_format="{l_bar}{bar}| {n}/{total} s [{elapsed}<{remaining}{postfix}]")  # fmt: skip
        steps_at_start = self.step
        if not self.optimizer.state:  # new, or resumed without Adam's moments: warm up again
            self._fresh_adam_step = self.step
        while (elapsed := time.monotonic() - started) < budget:
            minutes_done = config.elapsed_minutes + elapsed / 60
            stream = minutes_done >= config.autoencoder_minutes
            interval, groups, size = (
                rng.choice(config.intervals),
                rng.choice(config.groups),
                rng.choice(config.sizes),
            )
            ranks = torch.tensor([rng.choice(config.ranks) for _ in range(config.batch)])
            length = groups * interval + 1 if stream else AUTOENCODER_FRAMES
            frames, init_frames = bank.sample(config.batch, length, size)
            with torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
            ):
                terms = self.losses(frames, init_frames, ranks, interval, stream=stream)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(minutes_done)
            self.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(self.named_parameters().values(), 1.0)
            self.optimizer.step()
            self.step += 1
            for key, term in terms.items():
                value = float(term.detach())
                running[key] = 0.9 * running.get(key, value) + 0.1 * value
            bar.n = min(round(elapsed), round(budget))  # bar.total
            bar.set_postfix_str(
                f"{(self.step - steps_at_start) / max(elapsed, 1e-6):.1f} steps/s", refresh=False
            )
            bar.update(0)
            if time.monotonic() - last_log >= config.log_every_s or self.step == 1:
                last_log = time.monotonic()
                row = {"step": self.step, "minutes": round(minutes_done, 2),
                       "lr": round(self.learning_rate(minutes_done), 6), "phase": "stream" if stream else "autoencoder",
                       **{f"{k}_psnr": rounded_psnr(v) for k, v in running.items() if k in ("stream", "autoencoder")},
                       **{k: round(v, 5) for k, v in running.items()}}  # fmt: skip
                if evaluate is not None:
                    row |= evaluate()
                config.history.append(row)
                log(json.dumps(row))
        bar.close()
        config.elapsed_minutes += (time.monotonic() - started) / 60

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Every network in eval mode for the block, back in training mode after it."""
        for module in self.modules().values():
            module.eval()
        try:
            yield
        finally:
            for module in self.modules().values():
                module.train()


def _held(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` as a function of its input only: gradients reach the input, not its weights."""
    weights = {name: p.detach() for name, p in module.named_parameters()}
    return lambda x: torch.func.functional_call(module, weights, (x,))


def rounded_psnr(mse: float) -> float:
    """PSNR in dB of an MSE between images in [-1, 1], rounded and finite (for the history)."""
    return round(psnr_from_mse(max(mse, 1e-12)), 3)
