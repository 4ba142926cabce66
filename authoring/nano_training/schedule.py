"""The nano training's learning rate: a warm-up from the step where Adam started afresh, then one
cosine over the schedule's minutes, which span resumed runs (the checkpoint records the minutes
done)."""

from __future__ import annotations

import math

from authoring.nano_training.train_config import TrainConfig


def schedule_minutes(config: TrainConfig) -> float:
    """The cosine's length: ``schedule_minutes``, or the minutes done before this run plus its own."""
    return config.schedule_minutes or (config.elapsed_minutes + config.minutes)


def learning_rate(config: TrainConfig, steps_since_fresh_adam: int, minutes_done: float) -> float:
    """Warm-up (counted from the step where Adam started afresh), then a cosine over the schedule
    down to ``min_lr_fraction`` of ``lr``."""
    warmup = min(1.0, (steps_since_fresh_adam + 1) / config.warmup_steps)
    fraction = min(1.0, minutes_done / schedule_minutes(config))
    floor = config.min_lr_fraction
    cosine = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * fraction))
    return config.lr * warmup * cosine
