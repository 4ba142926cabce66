"""The live fit task: one (segment, level) on whichever worker the runner picks.

The catalogue's ``authoring.tasks.fit_segment_task`` slices a whole title's frames; a live
channel ships only the segment's own frames (the feed has no end to slice from), so this
task takes those and otherwise does the same: the worker's cached generator, torch threads
set to the task's CPU slots, checkpoints after every keyframe under ``checkpoint_root`` (a
worker killed midway is re-run by Ray and resumes from them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from authoring.runner import TaskResources
from authoring.segments import Segment, SegmentResult, fit_segment
from authoring.tasks import GeneratorLoader, checkpoint_dir_for, worker_generator


def fit_live_segment(
    frames: np.ndarray,
    segment: Segment,
    loader: GeneratorLoader,
    options: Any,
    init_latent: np.ndarray,
    checkpoint_root: Path | None,
    resources: TaskResources,
    measure_quality: bool = True,
) -> SegmentResult:
    """Fit one level of one live segment; ``frames`` are exactly the frames its fit sees."""
    import torch

    if not resources.gpus:
        torch.set_num_threads(resources.cpus)
    generator = worker_generator(loader, resources.device)
    checkpoint_dir = checkpoint_dir_for(checkpoint_root, segment) if checkpoint_root else None
    return fit_segment(
        frames, segment, generator, options, init_latent,
        checkpoint_dir=checkpoint_dir, measure_quality=measure_quality,
    )  # fmt: skip
