"""What a nano training run does (``TrainConfig``): budgets, sampling, schedule, and the history
a checkpoint carries across runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """What a training run does; saved with each checkpoint."""

    minutes: float = 3.0  # wall-clock budget of this run
    schedule_minutes: float | None = None  # the cosine's length across runs (None: this run's)
    autoencoder_minutes: float = 0.0  # first minutes of the schedule train the autoencoder alone
    sizes: tuple[int, ...] = (192, 192, 128)  # square crop, drawn per step
    batch: int = 16
    groups: tuple[int, ...] = (2, 2, 3, 5)  # keyframe intervals per sample, drawn per step
    intervals: tuple[int, ...] = (10, 10, 5)  # drawn per step
    ranks: tuple[int, ...] = (1, 2, 4, 8, 8, 16)  # drawn per clip
    lr: float = 2e-3
    min_lr_fraction: float = 0.05  # the cosine ends at this fraction of lr
    warmup_steps: int = 200
    seed: int = 0
    log_every_s: float = 30.0
    channels_last: bool = True
    elapsed_minutes: float = 0.0  # training minutes done before this run (from the checkpoint)
    history: list[dict] = field(default_factory=list)
