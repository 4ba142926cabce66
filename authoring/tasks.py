"""The tasks a runner executes: prepare a title, fit a segment or a batch of segments. Plain
picklable functions.

A worker loads the generator itself from a ``GeneratorSpec`` (or any hashable object with
``load(device)``) and keeps the last one it loaded, so the CPU workers that Ray reuses, and the
in-process runner, load it once. Every task sets torch's threads to its CPU slots, so a task
computes the same numbers wherever it runs (the in-process runner included).

A title's frames come to a task as an array (through the runner's object store, ``put``) or as
a ``FramesFile``: a ``.npy`` file on storage every worker sees, which the task maps and reads
only its segment's frames from (``CatalogSettings.shared_frames``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from authoring.runner import TaskResources
from authoring.segment_batch import AUTO, fit_segments, frame_bytes, segments_per_step_for
from authoring.segments import Segment, SegmentResult, fit_segment
from prompts.stream_model import LatentGeometry


class GeneratorLoader(Protocol):
    """Loads the generator on a device; hashable (a worker caches by it)."""

    def load(self, device: str) -> Any: ...


@dataclass(frozen=True)
class GeneratorSpec:
    """The generator options of a fitting command, as data a worker can load from."""

    name: str
    weights: Path | None = None
    taesd: Path | None = None

    def load(self, device: str) -> Any:
        """bf16 on CUDA (the fitting precision, docs/inversion.md), the default elsewhere."""
        import torch

        from engines import load_generator

        dtype = torch.bfloat16 if device.startswith("cuda") else None
        return load_generator(
            self.name, weights=self.weights, taesd=self.taesd, device=device, dtype=dtype
        )


@dataclass(frozen=True)
class FramesFile:
    """A title's frames (``uint8 [T, H, W, 3]``) in a ``.npy`` file on shared storage."""

    path: Path

    @classmethod
    def write(cls, path: Path, frames: np.ndarray) -> FramesFile:
        """Write ``frames`` to ``path`` (through a temporary name and a rename: a worker never
        maps half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with partial.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(frames))
        os.replace(partial, path)
        return cls(path)

    def load(self) -> np.ndarray:
        """The frames, memory-mapped read-only: a task reads the pages of the frames it uses."""
        return np.load(self.path, mmap_mode="r")


def task_frames(frames: np.ndarray | FramesFile) -> np.ndarray:
    """A task's frames argument as an array (a ``FramesFile`` mapped)."""
    return frames.load() if isinstance(frames, FramesFile) else frames


@dataclass(frozen=True)
class TaskOutput:
    """A task's value and what it cost where it ran."""

    value: Any
    seconds: float  # wall time inside the worker, loading the generator included
    device: str  # e.g. "cpu" or "cuda:0 (NVIDIA H100 80GB HBM3)"


@dataclass(frozen=True)
class TitleSetup:
    """What every segment of a title shares."""

    init_latent: np.ndarray
    generator_id: str
    generator_name: str
    latent: LatentGeometry  # the generator's latent geometry (the manifest records it)


_loaded: tuple[Any, Any] | None = None  # ((loader, device), generator) of this worker
_frame_bytes: dict[tuple[Any, int, int], int] = {}  # (generator id, width, height) -> bytes


def worker_generator(loader: GeneratorLoader, device: str) -> Any:
    """The generator for this worker, loaded once per (loader, device)."""
    global _loaded
    key = (loader, device)
    if _loaded is None or _loaded[0] != key:
        _loaded = None  # free the previous one first
        _loaded = (key, loader.load(device))
    return _loaded[1]


def _start(resources: TaskResources) -> tuple[float, str]:
    import torch

    from engines.devices import describe_device

    started = time.perf_counter()
    if resources.gpus:
        index = torch.cuda.current_device()
        return started, describe_device(f"cuda:{index}")
    torch.set_num_threads(resources.cpus)
    return started, "cpu"


def prepare_title(
    frames: np.ndarray | FramesFile, loader: GeneratorLoader, resources: TaskResources
) -> TaskOutput:
    """The title's initial latent (the encoding of frame 0) and the generator's identity."""
    from authoring.initial import initial_latent

    started, device = _start(resources)
    generator = worker_generator(loader, resources.device)
    setup = TitleSetup(
        initial_latent(generator, task_frames(frames)[0]), generator.generator_id, generator.name,
        generator.latent_geometry,
    )  # fmt: skip
    return TaskOutput(setup, time.perf_counter() - started, device)


def checkpoint_dir_for(root: Path, segment: Segment) -> Path:
    """Where a segment's fit checkpoints (under the title's checkpoint root, shared storage)."""
    return root / f"{segment.level.name}-{segment.index:04d}"


def fit_segment_task(
    frames: np.ndarray | FramesFile,
    segment: Segment,
    loader: GeneratorLoader,
    options: Any,
    init_latent: np.ndarray,
    checkpoint_root: Path | None,
    resources: TaskResources,
    measure_quality: bool = True,
    measure_vmaf: bool = False,
) -> TaskOutput:
    """Fit one segment of a title (``frames``: the whole title's) on this worker's device."""
    started, device = _start(resources)
    generator = worker_generator(loader, resources.device)
    result: SegmentResult = fit_segment(
        np.array(segment.frames_of(task_frames(frames))), segment, generator, options, init_latent,
        checkpoint_dir=checkpoint_dir_for(checkpoint_root, segment) if checkpoint_root else None,
        measure_quality=measure_quality, measure_vmaf=measure_vmaf,
    )  # fmt: skip
    return TaskOutput(result, time.perf_counter() - started, device)


def max_stack_for(
    generator: Any,
    segments: Sequence[Segment],
    frames: np.ndarray,
    resources: TaskResources,
    segments_per_step: int | str,
) -> int | None:
    """Problems per stacked step: ``segments_per_step``, or for ``AUTO`` on a GPU the memory
    rule (``authoring.segment_batch.segments_per_step_for``: the device's free memory, one
    frame's training memory measured once per worker and size, the longest interval), on CPU
    every problem that matches (the driver sized the batch)."""
    if segments_per_step != AUTO:
        return int(segments_per_step)
    if not resources.gpus:
        return None
    import torch

    height, width = frames.shape[1:3]
    key = (generator.generator_id, width, height)
    if key not in _frame_bytes:
        _frame_bytes[key] = frame_bytes(generator, width, height)
    free, _ = torch.cuda.mem_get_info(generator.device)
    longest = max(segment.level.interval for segment in segments)
    return segments_per_step_for(free, _frame_bytes[key], longest)


def fit_segments_task(
    segments: Sequence[Segment],
    sources: Sequence[int],
    loader: GeneratorLoader,
    options: Any,
    init_latents: Sequence[np.ndarray],
    checkpoint_roots: Sequence[Path | None],
    resources: TaskResources,
    measure_quality: bool,
    measure_vmaf: bool,
    segments_per_step: int | str,
    *title_frames: np.ndarray | FramesFile,
) -> TaskOutput:
    """Fit a batch of segments stacked (``authoring.segment_batch.fit_segments``); the value is
    their ``SegmentResult``s in order. Segment ``i`` is cut from ``title_frames[sources[i]]``
    (the frames are trailing arguments, so that a Ray runner resolves each object reference;
    a ``FramesFile`` is read here) and checkpoints under ``checkpoint_roots[i]``."""
    started, device = _start(resources)
    generator = worker_generator(loader, resources.device)
    titles = [task_frames(f) for f in title_frames]
    frames = [np.array(s.frames_of(titles[i])) for s, i in zip(segments, sources, strict=True)]
    results = fit_segments(
        frames, segments, generator, options, init_latents,
        checkpoint_dirs=[checkpoint_dir_for(root, s) if root else None
                         for s, root in zip(segments, checkpoint_roots, strict=True)],
        measure_quality=measure_quality, measure_vmaf=measure_vmaf,
        max_stack=max_stack_for(generator, segments, frames[0], resources, segments_per_step),
    )  # fmt: skip
    return TaskOutput(results, time.perf_counter() - started, device)
