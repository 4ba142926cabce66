"""Fitting on the tiny generator: planted-prompt recovery, the objective, exact reproduction, resume.

The stream: 6 frames at 64x64, rank 2, interval 2 (keyframes 0, 2, 4 and the short final
interval to 5), 4-frame chunks (frame 4 starts chunk 1: its previous latent is the init latent).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from authoring.build import FitOptions, build_ladder, fit_level
from authoring.checkpoint import CheckpointError
from authoring.fit import FitState, LevelFitter
from authoring.levels import LevelSpec
from authoring.losses import FitLoss, LossWeights, perceptual_term
from authoring.metrics import psnr_per_frame, quality
from authoring.presets import get_preset
from authoring.source import SourceVideo
from prompts.keyframe import Keyframe, interpolate_context, keyframe_positions
from prompts.ladder import Ladder, split_into_chunks
from prompts.manifest import StreamInfo, load_manifest
from prompts.quant import quantize_tensor

torch.set_num_threads(1)

SIZE = 64
RANK = 2
INTERVAL = 2
FRAMES = 6
CHUNK = 4
FPS = 2.0  # with 2 s chunks: 4 frames a chunk
PRESET = get_preset("demo").with_budgets(50, 16)
OPTIONS = FitOptions(preset=PRESET, perceptual="ms-ssim", seed=1)
LEVEL = LevelSpec(RANK, INTERVAL)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny() -> Any:
    from engines import load_generator

    return load_generator("tiny", device="cpu")


def _stream(gen: Any) -> StreamInfo:
    return StreamInfo(
        fps=FPS, width=SIZE, height=SIZE, frames=FRAMES, chunk_frames=CHUNK,
        generator_id=gen.generator_id, generator_name=gen.name,
    )  # fmt: skip


def _decode_sequentially(gen: Any, keyframes: list[Keyframe], init: np.ndarray) -> np.ndarray:
    stream = gen.open_stream(width=SIZE, height=SIZE, init_latent=init)
    chunks = split_into_chunks(tuple(keyframes), _stream(gen), level=0, interval=INTERVAL)
    return np.concatenate([stream.decode_chunk(chunk) for chunk in chunks])


@pytest.fixture(scope="module")
def planted(tiny: Any) -> tuple[np.ndarray, np.ndarray]:
    """Frames the tiny generator makes from random prompts, and the init latent."""
    rng = np.random.default_rng(7)
    keyframes = [
        Keyframe(
            p,
            quantize_tensor(rng.random((77, RANK), np.float32)),
            quantize_tensor(rng.random((RANK, 1024), np.float32)),
        )
        for p in keyframe_positions(FRAMES, INTERVAL)
    ]
    init = np.zeros((1, 4, SIZE // 8, SIZE // 8), np.float32)
    return _decode_sequentially(tiny, keyframes, init), init


@pytest.fixture(scope="module")
def fitted(tiny: Any, planted: tuple[np.ndarray, np.ndarray]) -> tuple[Any, list[FitState]]:
    """One uninterrupted fit from a fresh (random) start, with a snapshot after each keyframe."""
    frames, init = planted
    snapshots: list[FitState] = []
    original = LevelFitter.fit

    def recording_fit(
        self: LevelFitter, state: Any = None, on_keyframe: Any = None, **kwargs: Any
    ) -> FitState:
        def record(current: FitState, result: Any) -> None:
            snapshots.append(copy.deepcopy(current))
            on_keyframe(current, result)

        return original(self, state, on_keyframe=record, **kwargs)

    LevelFitter.fit = recording_fit  # type: ignore[method-assign]
    try:
        level = fit_level(
            tiny, SourceVideo(frames, FPS), init, LEVEL, CHUNK, OPTIONS, progress=False
        )
    finally:
        LevelFitter.fit = original  # type: ignore[method-assign]
    return level, snapshots


def test_planted_prompts_are_recovered(planted: Any, fitted: Any) -> None:
    frames, _ = planted
    level, _ = fitted
    assert level.known.all()
    psnr = psnr_per_frame(level.frames, frames)
    assert psnr.min() > 25.0, psnr


def test_saved_prompts_reproduce_the_fitted_frames_exactly(
    tiny: Any, planted: Any, fitted: Any
) -> None:
    """Quantisation is in the loop: the stored 8-bit keyframes decode to the very frames scored."""
    _, init = planted
    level, _ = fitted
    decoded = _decode_sequentially(tiny, level.state.keyframes, init)
    assert np.array_equal(decoded, level.frames)


def test_cold_decoded_chunk_equals_sequential_decode(tiny: Any, planted: Any, fitted: Any) -> None:
    from prompts.chunk import encode_chunk, make_prefix, parse_chunk

    _, init = planted
    level, _ = fitted
    chunks = [
        parse_chunk(encode_chunk(c))
        for c in split_into_chunks(
            tuple(level.state.keyframes), _stream(tiny), level=0, interval=INTERVAL
        )
    ]
    cold = tiny.open_stream(width=SIZE, height=SIZE, init_latent=init).decode_chunk(
        chunks[1], prefix=make_prefix(chunks[0])
    )
    assert np.array_equal(cold, level.frames[CHUNK:])


def _direct_span_losses(
    gen: Any,
    frames: np.ndarray,
    init: np.ndarray,
    keyframes: list[Keyframe],
    span_frames: list[int],
) -> torch.Tensor:
    """The stream model frame by frame from frame 0, straight from docs/architecture.md."""
    from engines.schedule import stream_noise
    from prompts.stream_model import SD_LATENT

    noise = torch.from_numpy(stream_noise(88, SIZE, SIZE, SD_LATENT))
    by_frame = {k.frame: k for k in keyframes}
    positions = sorted(by_frame)
    loss = FitLoss(perceptual_term("ms-ssim"), LossWeights())
    values, x0_prev, latent_input = [], None, None
    for f in range(span_frames[-1] + 1):
        if f in by_frame:  # a group starts on every keyframe
            prev = torch.from_numpy(init) if f % CHUNK == 0 else x0_prev
            latent_input = 0.05 * prev + 0.95 * noise
            context = by_frame[f].context()
        else:
            a = max(p for p in positions if p < f)
            b = min(p for p in positions if p > f)
            context = interpolate_context(by_frame[a], by_frame[b], f)
        with torch.no_grad():
            x0_prev, image = gen.forward(latent_input, torch.from_numpy(context)[None])
        if f in span_frames:
            target = torch.from_numpy(frames[f : f + 1]).permute(0, 3, 1, 2).float() / 127.5 - 1
            values.append(loss(image, target, torch.from_numpy(context)[None])[0])
    return torch.stack(values)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_interpolation_aware_objective_matches_direct_computation(
    tiny: Any, planted: Any, fitted: Any, k: int
) -> None:
    frames, init = planted
    level, snapshots = fitted
    fitter = LevelFitter(
        tiny, frames, init, _config(), PRESET, FitLoss(perceptual_term("ms-ssim"), LossWeights())
    )
    span = fitter.spans[k]
    u, v = (torch.from_numpy(a) for a in snapshots[k].factors)
    with torch.no_grad():
        batched = fitter.objective(span, snapshots[k - 1], u, v)
    keyframe = Keyframe(span.end, quantize_tensor(u), quantize_tensor(v))
    direct = _direct_span_losses(
        tiny, frames, init, snapshots[k - 1].keyframes + [keyframe], span.frames
    )
    assert span.frames == list(range(span.start + 1, span.end + 1))
    torch.testing.assert_close(batched, direct, rtol=1e-3, atol=1e-5)


def _config() -> Any:
    from authoring.fit import LevelConfig

    return LevelConfig(rank=RANK, interval=INTERVAL, chunk_frames=CHUNK, seed=OPTIONS.seed)


def test_resume_after_interruption_gives_the_uninterrupted_result(
    tiny: Any, planted: Any, fitted: Any, tmp_path: Path
) -> None:
    frames, init = planted
    level, _ = fitted
    source = SourceVideo(frames, FPS)
    original = LevelFitter.fit_span
    calls = {"n": 0}

    def dying_fit_span(self: LevelFitter, span: Any, state: Any, *args: Any) -> Any:
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the operator's ^C after two keyframes were checkpointed
        calls["n"] += 1
        return original(self, span, state, *args)

    LevelFitter.fit_span = dying_fit_span  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            fit_level(tiny, source, init, LEVEL, CHUNK, OPTIONS, out=tmp_path, progress=False)
    finally:
        LevelFitter.fit_span = original  # type: ignore[method-assign]
    resumed = fit_level(
        tiny, source, init, LEVEL, CHUNK, OPTIONS, out=tmp_path, resume=True, progress=False
    )
    assert [s.frame for s in resumed.state.stats] == [0, 2, 4, 5]
    assert resumed.state.keyframes == level.state.keyframes
    assert resumed.known.tolist() == [
        False,
        False,
        True,
        True,
        True,
        True,
    ]  # regenerated after the resume
    assert np.array_equal(resumed.frames[2:], level.frames[2:])

    other = FitOptions(preset=PRESET.with_budgets(51, 16), perceptual="ms-ssim", seed=1)
    with pytest.raises(CheckpointError, match="other settings"):
        fit_level(
            tiny, source, init, LEVEL, CHUNK, other, out=tmp_path, resume=True, progress=False
        )


def test_build_ladder_publishes_chunks_that_decode_cold_to_the_scored_frames(
    tiny: Any, planted: Any, tmp_path: Path
) -> None:
    from prompts.chunk import make_prefix, parse_chunk

    frames, _ = planted
    options = FitOptions(preset=PRESET.with_budgets(8, 3), seed=1)
    out = tmp_path / "ladder"
    manifest = build_ladder(
        SourceVideo(frames, FPS), out, generator=tiny, levels=[LevelSpec(1, 2), LevelSpec(2, 2)],
        options=options, chunk_seconds=2.0, progress=False,
    )  # fmt: skip
    assert load_manifest(out / "manifest.json").to_json() == manifest.to_json()
    assert not manifest.stream.live and manifest.chunk_count == 2
    assert manifest.stream.prev_latent_rule == "chunk-reset"
    assert [lv.name for lv in manifest.levels] == ["r1n2", "r2n2"]
    assert manifest.levels[0].kbps < manifest.levels[1].kbps
    assert not (out / ".fit").exists()  # checkpoints go once the ladder is complete
    ladder = Ladder(out)
    for level in manifest.levels:
        chunks = [parse_chunk(ladder.chunk_bytes(level.id, i)) for i in range(2)]
        assert [c.bytes for c in level.chunks] == [
            len(ladder.chunk_bytes(level.id, i)) for i in range(2)
        ]
        for index, chunk in enumerate(chunks):
            stream = tiny.open_stream(width=SIZE, height=SIZE, init_latent=ladder.init_state())
            decoded = stream.decode_chunk(
                chunk, prefix=make_prefix(chunks[index - 1]) if index else None
            )
            start, end = manifest.stream.chunk_range(index)
            expected = quality(decoded, frames[start:end])
            assert level.chunks[index].psnr == expected["psnr"]
            assert level.chunks[index].ssim == expected["ssim"]


def test_levels_fitted_in_parallel_workers_equal_sequential(
    tiny: Any, planted: Any, tmp_path: Path
) -> None:
    """The several-GPU path (one worker per generator copy), run here with two CPU copies."""
    from engines import load_generator

    frames, _ = planted
    options = FitOptions(preset=PRESET.with_budgets(6, 2), seed=1)
    levels = [LevelSpec(1, 2), LevelSpec(2, 2), LevelSpec(1, 5)]
    source = SourceVideo(frames, FPS)
    build_ladder(
        source, tmp_path / "seq", generator=tiny, levels=levels, options=options, progress=False
    )
    build_ladder(
        source, tmp_path / "par", generator=tiny, levels=levels, options=options, progress=False,
        extra_generators=[load_generator("tiny", device="cpu")],
    )  # fmt: skip
    sequential, parallel = Ladder(tmp_path / "seq"), Ladder(tmp_path / "par")
    assert sequential.manifest.to_json() == parallel.manifest.to_json()
    for level in sequential.manifest.levels:
        for index in range(sequential.manifest.chunk_count):
            assert sequential.chunk_bytes(level.id, index) == parallel.chunk_bytes(level.id, index)
