"""Fit levels of a source video and publish them as a chunked prompt ladder.

Order of work: compute the init latent, fit each level (checkpoint after every keyframe,
``resume`` continues), then write the ladder chunk index by chunk index across levels, each
chunk's quality measured by decoding it cold (with its switch prefix) through the generator's
own stream decoder. Everything lands through ``LadderWriter`` (atomic, chunk before manifest).
"""

from __future__ import annotations

import queue
import shutil
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from authoring.batched import StepOptions
from authoring.checkpoint import load_checkpoint, save_checkpoint
from authoring.fit import FitState, InitialFactors, LevelConfig, LevelFitter, SpanResult
from authoring.initial import initial_latent, sd_vae_initial_latent
from authoring.levels import CHECKPOINT_DIR, LevelSpec, chunk_frames_for
from authoring.losses import FitLoss, LossWeights, perceptual_term
from authoring.metrics import psnr_per_frame, quality
from authoring.presets import FitPreset, check_perceptual
from authoring.sequential import StepHook
from authoring.source import SourceVideo
from common.errors import UserError
from prompts.chunk import PromptChunk, make_prefix
from prompts.ladder import MANIFEST_NAME, LadderWriter, split_into_chunks
from prompts.manifest import Manifest, StreamInfo
from prompts.stream_model import (
    CHAINED,
    NOISE_SEED,
    PREV_LATENT_WEIGHT,
    check_generator,
    size_problem,
)

ENCODE_BATCH = 8  # frames per encoder call
FAITHFUL_ENCODER_PSNR = 20.0  # dB; below this the latent phase is skipped


class BuildError(UserError, ValueError):
    """The ladder cannot be built with these inputs (one-line reason)."""


@dataclass(frozen=True)
class FitOptions:
    """Settings shared by every level of one build."""

    preset: FitPreset
    perceptual: str = "ms-ssim"  # "ms-ssim", "none", "vgg:PATH" or "vgg19:PATH"
    loss_weights: LossWeights = LossWeights()
    warm_start: bool = True
    seed: int = 0
    prev_latent_rule: str | None = None  # None: the preset's
    vae_weights: Path | None = None  # SD VAE for the preset's "sd-vae" initial latent
    step_options: StepOptions = StepOptions()  # how batched steps run (not part of the result)
    amortised_start: bool = True  # start keyframes from the generator's prompt encoder (nano)

    @property
    def rule(self) -> str:
        """The stream's previous-latent rule."""
        return self.prev_latent_rule or self.preset.prev_latent_rule


def checkpoint_path(out: Path, level: LevelSpec) -> Path:
    return out / CHECKPOINT_DIR / f"{level.name}.safetensors"


def fingerprint(
    source: SourceVideo, generator_id: str, config: LevelConfig, options: FitOptions
) -> dict[str, Any]:
    """Everything that changes the fitted result; a checkpoint only resumes under the same one."""
    return {
        "source": source.digest(),
        "generator": generator_id,
        "level": asdict(config),
        "preset": asdict(options.preset),
        "perceptual": options.perceptual,
        "loss_weights": asdict(options.loss_weights),
        "amortised_start": options.amortised_start,  # prompt-encoder warm start or not
    }


@dataclass
class FittedLevel:
    """A fitted level: its state and the frames the fit regenerated (exactly as decoded)."""

    state: FitState
    frames: np.ndarray  # uint8 [T, H, W, 3]; valid where ``known``
    known: (
        np.ndarray
    )  # bool [T]: frames regenerated in this run (not those of a resumed checkpoint)


def latent_targets_for(
    generator: Any, frames: np.ndarray, preset: FitPreset, progress: bool = False
) -> np.ndarray | None:
    """Encoder latents of ``frames`` when the preset has a latent phase and the encoder is faithful.

    Faithful means the generator's decoder brings the encoding of frame 0 back to at least
    FAITHFUL_ENCODER_PSNR dB (TAESD does; the tiny generator's seeded encoder does not, and
    fitting x0 to its latents would be fitting noise).
    """
    import torch
    from tqdm import tqdm

    from engines import WeightsNotFoundError

    if preset.latent_fraction <= 0:
        return None
    batches = []
    try:
        for start in tqdm(
            range(0, len(frames), ENCODE_BATCH),
            desc="encode targets",
            unit="batch",
            disable=not progress,
        ):
            image = (
                torch.from_numpy(frames[start : start + ENCODE_BATCH]).permute(0, 3, 1, 2).float()
                / 127.5
                - 1
            )
            batches.append(generator.encode(image))
            if start == 0:
                with torch.no_grad():
                    decoded = generator.backend.decode(batches[0][:1].to(generator.device))
                restored = (
                    ((decoded.float().clamp(-1, 1) + 1) * 127.5)
                    .round()
                    .cpu()
                    .permute(0, 2, 3, 1)
                    .numpy()
                )
                if psnr_per_frame(restored.astype(np.uint8), frames[:1])[0] < FAITHFUL_ENCODER_PSNR:
                    return None
    except WeightsNotFoundError:
        return None
    return torch.cat(batches).float().cpu().numpy()


def stream_initial_latent(
    generator: Any, frame: np.ndarray, options: FitOptions, latent_targets: np.ndarray | None
) -> np.ndarray:
    """The stream's initial latent: the preset's ``sd-vae`` posterior sample when the weights
    hold an SD VAE (else a note and the TAESD encoding), the TAESD encoding otherwise."""
    if options.preset.init_latent == "sd-vae":
        latent = sd_vae_initial_latent(
            options.vae_weights, frame, options.seed, str(generator.device)
        )
        if latent is not None:
            return latent
        print(
            "note: no SD VAE in the generator's weights; the stream starts from the TAESD "
            "encoding of frame 0 instead of the release's VAE posterior sample",
            file=sys.stderr,
        )
    return latent_targets[:1] if latent_targets is not None else initial_latent(generator, frame)


def fit_level(
    generator: Any,
    source: SourceVideo,
    init_latent: np.ndarray,
    level: LevelSpec,
    chunk_frames: int,
    options: FitOptions,
    *,
    latent_targets: np.ndarray | None = None,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    initial: InitialFactors | None = None,
    on_step: StepHook | None = None,
    progress_label: str | None = None,
    wrap_optimiser: Callable[[Any], Any] | None = None,
) -> FittedLevel:
    """Fit one level; with ``out`` it checkpoints after every keyframe (and resumes from it).

    The per-level entry point: frames (``source``), level (``level``, ``chunk_frames``),
    options (``options.seed`` seeds random starts), and a start (``init_latent``; a resumed
    checkpoint; ``initial(span, state)``, any keyframe's starting float factors or None for
    the default) -> keyframes. ``on_step`` sees every optimiser step of a sequential preset
    (``LevelFitter.fit_span``). ``initial`` is not part of the checkpoint's fingerprint. The
    progress bar counts keyframes under ``progress_label`` (default ``fit LEVEL``).
    ``wrap_optimiser`` replaces the fitter's batched optimiser by what it returns for it (an
    object with the same ``run``): ``authoring.segment_batch`` stacks several fits' steps so.
    """
    from tqdm import tqdm

    check_perceptual(options.preset, options.perceptual)
    config = LevelConfig(
        rank=level.rank, interval=level.interval, chunk_frames=chunk_frames,
        noise_seed=NOISE_SEED, prev_latent_weight=PREV_LATENT_WEIGHT,
        warm_start=options.warm_start, seed=options.seed, prev_latent_rule=options.rule,
    )  # fmt: skip
    loss = FitLoss(perceptual_term(options.perceptual), options.loss_weights, options.preset.clamp)
    predictor = None
    if options.amortised_start and options.preset.algorithm != "sequential":
        from authoring.nano_prompt_encoder import factor_predictor_for

        predictor = factor_predictor_for(generator, source.frames)
    if predictor is None and options.preset.first_iterations == 0:
        raise BuildError(
            f"preset {options.preset.name!r} only keeps a prompt encoder's factors, and generator "
            f"{generator.name!r} has none (use --generator nano, or another preset)"
        )
    fitter = LevelFitter(
        generator, source.frames, init_latent, config, options.preset, loss, latent_targets,
        step_options=options.step_options, predict_factors=predictor,
    )  # fmt: skip
    if wrap_optimiser is not None:
        fitter.optimiser = wrap_optimiser(fitter.optimiser)
    print_ = fingerprint(source, generator.generator_id, config, options)
    state = FitState()
    path = checkpoint_path(out, level) if out is not None else None
    if resume and path is not None and path.exists():
        state = load_checkpoint(path, print_)
    fitted = FittedLevel(state, np.zeros_like(source.frames), np.zeros(len(source.frames), bool))

    def on_keyframe(current: FitState, result: SpanResult) -> None:
        end = result.decoded_start + len(result.decoded)
        fitted.frames[result.decoded_start : end] = result.decoded
        fitted.known[result.decoded_start : end] = True
        if path is not None:
            save_checkpoint(path, current, print_)

    with tqdm(
        total=len(fitter.spans), initial=len(state.keyframes),
        desc=progress_label or f"fit {level.name}",
        unit="keyframe", disable=not progress, dynamic_ncols=True,
    ) as bar:  # fmt: skip
        fitter.fit(state, on_keyframe=on_keyframe, progress=bar, initial=initial, on_step=on_step)
    return fitted


def _fit_levels(
    workers: Sequence[Any],
    levels: Sequence[LevelSpec],
    fit_with: Callable[[Any, LevelSpec], FittedLevel],
) -> dict[str, FittedLevel]:
    """Fit every level: in order on one worker, else one thread per worker pulling from a queue."""
    if len(workers) == 1:
        return {level.name: fit_with(workers[0], level) for level in levels}
    pending = queue.SimpleQueue[LevelSpec]()
    for level in levels:
        pending.put(level)
    fits: dict[str, FittedLevel] = {}

    def drain(worker: Any) -> None:
        while True:
            try:
                level = pending.get_nowait()
            except queue.Empty:
                return
            fits[level.name] = fit_with(worker, level)

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        for future in [pool.submit(drain, worker) for worker in workers]:
            future.result()  # re-raises a worker's failure
    return fits


def _check_same_stream(out: Path, width: int, height: int, generator_id: str) -> None:
    """A resumed ladder must keep its size and generator."""
    from prompts.manifest import ManifestError, load_manifest

    try:
        stream = load_manifest(out / MANIFEST_NAME).stream
    except (OSError, ManifestError) as error:
        raise BuildError(f"cannot resume {out}: {error}") from None
    if (stream.width, stream.height) != (width, height):
        raise BuildError(
            f"{out} holds a {stream.width}x{stream.height} ladder; this run makes {width}x{height} frames"
        )
    check_generator(stream.generator_id, generator_id, f"the ladder in {out}")


def check_source_fits(
    source: SourceVideo, levels: Sequence[LevelSpec], chunk_seconds: float
) -> int:
    """The chunk length in frames for ``levels``; BuildError when the frame size, the chunk
    length or a level's keyframe interval does not fit the source."""
    frames, height, width = source.frames.shape[:3]
    problem = size_problem(width, height)
    if problem is not None:
        raise BuildError(f"frame {problem}")
    try:
        chunk_frames = chunk_frames_for(levels, source.fps, chunk_seconds)
    except ValueError as error:
        raise BuildError(str(error)) from None
    for level in levels:
        if frames > 1 and level.interval > frames - 1:
            raise BuildError(
                f"level {level.name}: interval {level.interval} is longer than the video ({frames} frames)"
            )
    return chunk_frames


def decode_cold(stream: Any, chunk: PromptChunk, previous: PromptChunk | None) -> np.ndarray:
    """Decode a chunk as a viewer joining there would: fresh state plus the switch prefix."""
    prefix = make_prefix(previous) if previous is not None and previous.keyframes else None
    return stream.decode_chunk(chunk, prefix=prefix)


def build_ladder(
    source: SourceVideo,
    out: str | Path,
    *,
    generator: Any,
    levels: Sequence[LevelSpec],
    options: FitOptions,
    chunk_seconds: float = 2.0,
    resume: bool = False,
    measure_quality: bool = True,
    measure_vmaf: bool = False,
    progress: bool = True,
    extra_generators: Sequence[Any] = (),
) -> Manifest:
    """Fit ``levels`` to ``source`` and write a complete ladder to ``out``; returns its manifest.

    Each chunk's quality is its PSNR and SSIM (``measure_quality``) and, with ``measure_vmaf``,
    its VMAF on the generator's device (``authoring.metrics``).

    ``extra_generators`` are copies of ``generator`` on other devices (one per GPU): levels are
    then fitted in parallel, each worker taking the next unfitted level.
    """
    out = Path(out)
    if not levels:
        raise BuildError("no levels to fit")
    if any(g.generator_id != generator.generator_id for g in extra_generators):
        raise BuildError("extra generators must be copies of the main generator (same id)")
    frames, height, width = source.frames.shape[:3]
    if (out / MANIFEST_NAME).exists():
        if not resume:
            raise BuildError(
                f"{out} already holds a ladder; pass --resume to continue it or choose another --out"
            )
        _check_same_stream(out, width, height, generator.generator_id)
    chunk_frames = check_source_fits(source, levels, chunk_seconds)

    check_perceptual(options.preset, options.perceptual)
    latent_targets = latent_targets_for(generator, source.frames, options.preset, progress)
    init_latent = stream_initial_latent(generator, source.frames[0], options, latent_targets)

    def fit_with(worker: Any, level: LevelSpec) -> FittedLevel:
        return fit_level(
            worker, source, init_latent, level, chunk_frames, options,
            latent_targets=latent_targets, out=out, resume=resume, progress=progress,
            progress_label=f"fit {level.name} (level {levels.index(level) + 1}/{len(levels)})",
        )  # fmt: skip

    fits = _fit_levels([generator, *extra_generators], levels, fit_with)

    stream_info = StreamInfo(
        fps=source.fps, width=width, height=height, frames=frames, chunk_frames=chunk_frames,
        generator_id=generator.generator_id, generator_name=generator.name,
        noise_seed=NOISE_SEED, prev_latent_weight=PREV_LATENT_WEIGHT, prev_latent_rule=options.rule,
        latent=generator.latent_geometry,
    )  # fmt: skip
    writer = LadderWriter(out, stream_info, [(lv.name, lv.rank, lv.interval) for lv in levels])
    writer.write_init_state(init_latent)
    chunked = [
        split_into_chunks(
            tuple(fits[lv.name].state.keyframes), stream_info, level=i, interval=lv.interval
        )
        for i, lv in enumerate(levels)
    ]
    decoder = generator.open_stream(
        width=width, height=height, noise_seed=NOISE_SEED, prev_latent_weight=PREV_LATENT_WEIGHT,
        prev_latent_rule=options.rule, init_latent=init_latent,
    )  # fmt: skip
    if options.rule == CHAINED and measure_quality:
        # A chained stream cannot be decoded cold from a middle chunk: a resumed level's
        # frames come from decoding all its chunks in order.
        for lv, chunks in zip(levels, chunked, strict=True):
            fitted = fits[lv.name]
            if not fitted.known.all():
                stream = generator.open_stream(
                    width=width, height=height, noise_seed=NOISE_SEED,
                    prev_latent_weight=PREV_LATENT_WEIGHT, prev_latent_rule=CHAINED,
                    init_latent=init_latent,
                )  # fmt: skip
                fitted.frames[:] = np.concatenate([stream.decode_chunk(c) for c in chunks])
                fitted.known[:] = True
    from tqdm import tqdm

    with tqdm(
        total=stream_info.chunk_count * len(levels),
        desc="publish",
        unit="chunk",
        disable=not progress,
    ) as bar:
        for index in range(stream_info.chunk_count):
            for level_id, chunks in enumerate(chunked):
                chunk = chunks[index]
                scores = None
                if measure_quality:
                    start, end = stream_info.chunk_range(index)
                    fitted = fits[levels[level_id].name]
                    if fitted.known[
                        start:end
                    ].all():  # regenerated by the fit exactly as a decoder does
                        decoded = fitted.frames[start:end]
                    else:
                        decoded = decode_cold(decoder, chunk, chunks[index - 1] if index else None)
                    vmaf_device = str(generator.device) if measure_vmaf else None
                    scores = quality(decoded, source.frames[start:end], vmaf_device)
                writer.append_chunk(level_id, chunk, scores)
                bar.update(1)
    manifest = writer.finish()
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return manifest
