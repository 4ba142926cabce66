"""Fitting jobs as a command asks for them: typed requests, their checks, one entry point per job.

``fit_ladder(source, out, job)`` fits one source into one ladder, in this process (levels on one
generator, or one per GPU) or, when the job asks for a cluster or closed segments, segment by
segment on a task runner; ``fit_titles(titles, job)`` fits many titles on a runner. A
``FitJob`` holds everything either needs; its ``Schedule`` is the fitting schedule as options
name it, checked into ``FitOptions`` only once the cheap checks passed. Importing this module
loads no torch, so a command builds its job before anything heavy loads. Failures are
``UserError``s (``BuildError`` and the errors of the modules called).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from authoring.levels import LevelSpec
from authoring.tasks import GeneratorSpec
from common.errors import UserError
from prompts.stream_model import size_problem

if TYPE_CHECKING:
    from authoring.build import FitOptions
    from authoring.catalog import TitleJob, TitleReport
    from prompts.manifest import Manifest


@dataclass(frozen=True)
class Schedule:
    """The fitting schedule as a command names it (``docs/inversion.md``): a preset and what
    overrides it. ``fit_options()`` checks it and gives the ``FitOptions`` of a build."""

    preset: str = "fast"
    budgets: tuple[int, int] | None = (
        None  # iterations of keyframe 0 and later ones; None: the preset's
    )
    target_psnr: float | None = None  # dB: stop a keyframe's fit there; None: the budget decides
    perceptual: str = "ms-ssim"  # "ms-ssim", "none", "vgg:PATH" or "vgg19:PATH"
    prev_latent_rule: str | None = None  # None: the preset's
    warm_start: bool = True  # start a keyframe from the previous one (else random factors)
    amortised_start: bool = True  # nano: start keyframes from its prompt encoder's factors
    seed: int = 0  # seeds random (cold) initialisations
    vae_weights: Path | None = None  # SD VAE for the preset's "sd-vae" initial latent

    def fit_options(self) -> FitOptions:
        """The checked ``FitOptions``; BuildError naming the problem (a perceptual weights file
        that is missing or malformed fails here, before anything else loads)."""
        from authoring.build import BuildError, FitOptions
        from authoring.losses import perceptual_term
        from authoring.presets import check_perceptual, get_preset

        try:
            preset = get_preset(self.preset).with_target(self.target_psnr)
            if self.budgets is not None:
                preset = preset.with_budgets(*self.budgets)
            check_perceptual(preset, self.perceptual)
            perceptual_term(self.perceptual)
        except (ValueError, RuntimeError) as error:
            raise BuildError(str(error)) from None
        return FitOptions(
            preset=preset, perceptual=self.perceptual, warm_start=self.warm_start, seed=self.seed,
            prev_latent_rule=self.prev_latent_rule, vae_weights=self.vae_weights,
            amortised_start=self.amortised_start,
        )  # fmt: skip


@dataclass(frozen=True)
class FitJob:
    """What to fit and how, for one source or many titles (``promptus invert``, ``ladder``,
    ``catalog``)."""

    levels: tuple[LevelSpec, ...]
    schedule: Schedule
    generator: GeneratorSpec
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    size: int | None = None  # output pixels, a multiple of 64; None: the generator's native size
    fps: float | None = None  # None: the video's (30 for a folder)
    max_frames: int | None = None  # None: every frame of the source
    chunk_seconds: float = 2.0
    resume: bool = False  # continue from the checkpoints of an interrupted run
    measure_quality: bool = True  # each chunk's PSNR and SSIM
    measure_vmaf: bool = False  # and its VMAF (authoring.metrics)
    progress: bool = True
    threads: int | None = None  # torch's CPU threads; None: torch's choice
    cluster: str = "none"  # where segment tasks run (``authoring.cluster.open_runner``)
    segment_seconds: float | None = (
        None  # None: DEFAULT_SEGMENT_SECONDS on a cluster, else open levels
    )
    local_cpus: int | None = None  # CPU slots of a ``local`` cluster; None: all cores
    segments_per_step: int | str | None = None  # stacked per task; None: auto on CUDA, else 1

    @property
    def segmented(self) -> bool:
        """Whether the job runs segment tasks (a cluster, or closed segments)."""
        return self.cluster != "none" or self.segment_seconds is not None

    @property
    def output_size(self) -> int:
        """The frame size: the job's, else the generator's native size (checked)."""
        from engines.variants import VARIANTS

        size = self.size if self.size is not None else VARIANTS[self.generator.name].native_size[0]
        check_size(size)
        return size


def check_size(size: int) -> None:
    """Refuse an output size no generator can produce (BuildError)."""
    from authoring.build import BuildError

    problem = size_problem(size, size)
    if problem is not None:
        raise BuildError(f"--size {size}: {problem}")


def check_vmaf(measure_quality: bool, measure_vmaf: bool) -> None:
    """Refuse per-chunk VMAF at once where it cannot be measured (BuildError)."""
    if not measure_vmaf:
        return
    from authoring.build import BuildError

    if not measure_quality:
        raise BuildError("--vmaf is part of the per-chunk quality: it cannot go with --no-quality")
    from authoring.metrics import vmaf_missing

    problem = vmaf_missing()
    if problem is not None:
        raise BuildError(f"--vmaf: {problem}")


def check_threads(threads: int | None) -> None:
    """Refuse a CPU thread count below 1 (BuildError)."""
    if threads is not None and threads < 1:
        from authoring.build import BuildError

        raise BuildError(f"--threads must be at least 1, got {threads}")


def set_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads (None: leave torch's choice); BuildError below 1."""
    check_threads(threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def load_fitting_generator(spec: GeneratorSpec, device: str) -> Any:
    """The generator ``spec`` names on ``device`` (``auto``: CUDA when present); BuildError when
    it cannot load.

    On CUDA it runs in bf16 (``GeneratorSpec.load``): tensor-core speed, and unlike fp16 (the
    engines' CUDA default, fine for inference) its range survives the backward pass.
    """
    from authoring.build import BuildError
    from engines.devices import resolve_device

    try:
        return spec.load(resolve_device(device))
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError) as error:
        raise BuildError(f"cannot load generator {spec.name}: {error}") from None


def extra_gpu_generators(job: FitJob) -> list[Any]:
    """With device ``auto`` on a machine of several GPUs: a copy of the generator per extra GPU
    (levels are then fitted in parallel)."""
    import torch

    if job.device != "auto" or len(job.levels) < 2 or torch.cuda.device_count() < 2:
        return []
    count = min(torch.cuda.device_count(), len(job.levels))
    return [load_fitting_generator(job.generator, f"cuda:{index}") for index in range(1, count)]


def fit_ladder(source: Path, out: Path, job: FitJob) -> Manifest:
    """Fit ``job.levels`` to ``source`` and publish the ladder in ``out``; its manifest.

    Cheap checks come first, so that a bad argument never waits for a generator to load.
    """
    from authoring.source import check_source_path, load_source

    check_source_path(source)  # before torch and the generator load (seconds)
    from authoring.build import BuildError, build_ladder
    from authoring.plan import check_level_geometry

    check_vmaf(job.measure_quality, job.measure_vmaf)
    if job.segmented:
        from authoring.catalog import TitleJob

        (report,) = fit_titles([TitleJob(out.name or "title", source, out)], job)
        if report.error is not None:
            raise BuildError(report.error)
        assert report.manifest is not None
        return report.manifest
    options = job.schedule.fit_options()
    set_threads(job.threads)
    size = job.output_size
    video = load_source(source, size, max_frames=job.max_frames, fps=job.fps)
    for level in job.levels:
        try:
            check_level_geometry(len(video.frames), level.interval, level.interval)
        except ValueError as error:
            raise BuildError(f"level {level.name}: {error}") from None
    generator = load_fitting_generator(job.generator, job.device)
    return build_ladder(
        video, out, generator=generator, levels=job.levels, options=options,
        chunk_seconds=job.chunk_seconds, resume=job.resume, measure_quality=job.measure_quality,
        measure_vmaf=job.measure_vmaf, progress=job.progress,
        extra_generators=extra_gpu_generators(job),
    )  # fmt: skip


def fit_titles(titles: Sequence[TitleJob], job: FitJob) -> list[TitleReport]:
    """Fit ``titles`` segment by segment on the runner ``job.cluster`` names; a ``TitleReport``
    per title, in order. Nothing loads a generator in this process."""
    from authoring.catalog import CatalogSettings, build_titles
    from authoring.cluster import open_runner
    from authoring.runner import ClusterError, TaskResources
    from authoring.segment_batch import resolve_segments_per_step
    from authoring.segments import DEFAULT_SEGMENT_SECONDS, check_segment_options

    check_vmaf(job.measure_quality, job.measure_vmaf)
    options = job.schedule.fit_options()
    check_segment_options(options)
    check_threads(job.threads)
    if job.local_cpus is not None and job.local_cpus < 1:
        raise ClusterError(f"--local-cpus must be at least 1, got {job.local_cpus}")
    segment_seconds = job.segment_seconds
    settings = CatalogSettings(
        levels=job.levels, options=options, size=job.output_size, max_frames=job.max_frames,
        fps=job.fps, chunk_seconds=job.chunk_seconds,
        segment_seconds=DEFAULT_SEGMENT_SECONDS if segment_seconds is None else segment_seconds,
        resume=job.resume, measure_quality=job.measure_quality, measure_vmaf=job.measure_vmaf,
    )  # fmt: skip
    runner = open_runner(job.cluster, local_cpus=job.local_cpus)
    try:
        on_gpu = runner.gpus > 0 and job.device != "cpu"
        resources = TaskResources(gpus=1) if on_gpu else TaskResources(cpus=job.threads or 1)
        stacked = resolve_segments_per_step(job.segments_per_step, on_gpu)
        settings = replace(settings, segments_per_step=stacked)
        return build_titles(
            titles, settings, runner=runner, loader=job.generator, resources=resources,
            progress=job.progress,
        )  # fmt: skip
    finally:
        runner.close()
