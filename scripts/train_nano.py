"""Train (or continue training) the nano generator and its prompt encoder; export the shipped weights.

    python scripts/prepare_nano_data.py SOURCES --out runs/nano-data/train.npz \\
        --heldout-out runs/nano-data/heldout.npz                                      # once
    # a first run, split over device calls (the cosine spans --schedule-minutes):
    python scripts/train_nano.py --data runs/nano-data/train.npz --heldout runs/nano-data/heldout.npz \\
        --checkpoint runs/nano-ckpt --minutes 8 --schedule-minutes 24 --autoencoder-minutes 2
    python scripts/train_nano.py ... --checkpoint runs/nano-ckpt --resume --minutes 8 ...
    # a later session, from the shipped weights alone (no optimiser state):
    python scripts/train_nano.py ... --from-shipped --minutes 20 --lr 5e-4 --export

Prints one JSON line per log interval (losses, PSNRs, held-out PSNRs: the autoencoder alone,
the start latent redrawn, and the prompt encoder's factors at r1/r2/r4/r8 n10) and writes the
checkpoint folder; ``--export`` then writes engines/weights/nano.safetensors and
authoring/weights/nano_prompt_encoder.safetensors (or the paths ``--export-dir`` names).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from authoring.nano_prompt_encoder import PROMPT_ENCODER_WEIGHTS
from authoring.nano_training.checkpoints import resume_checkpoint, save_checkpoint
from authoring.nano_training.clip_bank import ClipBank
from authoring.nano_training.data import read_frame_pack
from authoring.nano_training.heldout import evaluate_clip, write_samples
from authoring.nano_training.shipped_weights import export_shipped_weights, load_shipped_weights
from authoring.nano_training.train import NanoTrainer
from authoring.nano_training.train_config import TrainConfig
from engines.nano import NANO_WEIGHTS


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="frame pack of training clips (prepare_nano_data.py)",
    )
    parser.add_argument(
        "--heldout", type=Path, default=None, help="frame pack of held-out clips (square, for PSNR)"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="checkpoint folder (written; read with --resume)",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    start.add_argument(
        "--from-shipped",
        action="store_true",
        help="start from the shipped weight files (no optimiser state): continue an earlier session",
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="wall-clock training time")
    parser.add_argument(
        "--schedule-minutes",
        type=float,
        default=None,
        help="length of the learning-rate cosine across resumed runs (default: this run's)",
    )
    parser.add_argument(
        "--autoencoder-minutes",
        type=float,
        default=0.0,
        help="train the autoencoder alone for the schedule's first minutes (its ceiling)",
    )
    parser.add_argument("--batch", type=int, default=TrainConfig.batch)
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=TrainConfig.sizes,
        help="crop sizes drawn per step (a,b,...)",
    )
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--export",
        action="store_true",
        help="write the shipped float16 weight files after training",
    )
    parser.add_argument(
        "--export-dir", type=Path, default=None, help="write them here instead of into the package"
    )
    parser.add_argument("--log-every", type=float, default=30.0, help="seconds between log lines")
    parser.add_argument(
        "--samples",
        type=Path,
        default=None,
        help="PNG of held-out frames (source above, generated at r8n10 below) after training",
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # few shapes (crop sizes x clip lengths)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    config = TrainConfig(minutes=args.minutes, schedule_minutes=args.schedule_minutes,
                         autoencoder_minutes=args.autoencoder_minutes, batch=args.batch,
                         sizes=args.sizes, lr=args.lr, warmup_steps=args.warmup_steps,
                         seed=args.seed, log_every_s=args.log_every)  # fmt: skip
    trainer = NanoTrainer(config, device)
    if args.resume:
        resume_checkpoint(trainer, args.checkpoint)
        print(f"resumed at step {trainer.step} ({config.elapsed_minutes:.1f} min)", flush=True)
    elif args.from_shipped:
        load_shipped_weights(trainer, NANO_WEIGHTS, PROMPT_ENCODER_WEIGHTS)
        print(f"started from {NANO_WEIGHTS} and {PROMPT_ENCODER_WEIGHTS}", flush=True)
    bank = ClipBank(read_frame_pack(args.data), device, random.Random(args.seed + trainer.step))
    print(f"{len(bank.clips)} training clips, {sum(len(c) for c in bank.clips)} frames", flush=True)
    evaluate = None
    if args.heldout is not None:
        heldout = {name: torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
                   for name, frames in read_frame_pack(args.heldout).items()}  # fmt: skip

        def evaluate() -> dict:
            return {
                f"heldout_{name}": evaluate_clip(trainer, frames)
                for name, frames in heldout.items()
            }

    trainer.train(bank, evaluate, log=lambda line: print(line, flush=True))
    save_checkpoint(trainer, args.checkpoint)
    if args.samples is not None and args.heldout is not None:
        write_samples(trainer, next(iter(heldout.values())), args.samples)
    if args.export:
        folder = args.export_dir
        export_shipped_weights(trainer, folder / NANO_WEIGHTS.name if folder else NANO_WEIGHTS,
                               folder / PROMPT_ENCODER_WEIGHTS.name if folder else PROMPT_ENCODER_WEIGHTS)  # fmt: skip
    print(
        json.dumps({"step": trainer.step, "final": config.history[-1] if config.history else None})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
