"""The nano generator's authoring side: quality floor on unseen footage, the training pass, its data."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from authoring.build import BuildError, FitOptions, build_ladder
from authoring.evaluation import start_latent_clip
from authoring.levels import parse_levels
from authoring.metrics import psnr_per_frame
from authoring.nano_prompt_encoder import PromptEncoder
from authoring.nano_training.checkpoints import resume_checkpoint, save_checkpoint
from authoring.nano_training.clip_bank import ClipBank
from authoring.nano_training.data import (
    HELD_OUT,
    MANIFEST,
    TRAIN,
    load_manifest,
    read_frame_pack,
    write_frame_pack,
)
from authoring.nano_training.heldout import EVAL_RANKS, evaluate_clip, write_samples
from authoring.nano_training.schedule import learning_rate
from authoring.nano_training.shipped_weights import export_shipped_weights, load_shipped_weights
from authoring.nano_training.stream_sim import keyframe_factors, rank_context, simulate_stream
from authoring.nano_training.train import NanoTrainer
from authoring.nano_training.train_config import TrainConfig
from authoring.presets import get_preset
from authoring.source import load_source
from engines import load_generator
from engines.nano import load_nano
from engines.variants import NANO_LATENT
from prompts.keyframe import Keyframe
from prompts.ladder import Ladder, split_into_chunks
from prompts.manifest import StreamInfo
from prompts.quant import quantize_tensor
from promptus.commands.demo import DEMO_CLIP

# On the first 31 frames of the held-out demo clip, with the shipped weights and the prompt
# encoder's factors, in 1 s chunks: r1n10 24.5, r2n10 28.3, r4n10 29.1, r8n10 29.3 dB, the start
# latent redrawn 27.2 dB (docs/engines.md). The floors leave about 1 dB for platform differences
# and catch a broken generator, encoder or stream rule (those give < 15 dB).
QUALITY_FLOOR_DB = 28.0  # r8n10
RANK_GAIN_FLOOR_DB = 0.5  # r8n10 over r2n10


@pytest.fixture(scope="module")
def nano():  # type: ignore[no-untyped-def]
    return load_generator("nano", device="cpu")


@pytest.fixture(scope="module")
def demo_ladder(nano, tmp_path_factory):  # type: ignore[no-untyped-def]
    source = load_source(DEMO_CLIP, 192, max_frames=31)
    out = tmp_path_factory.mktemp("nano") / "ladder"
    manifest = build_ladder(
        source, out, generator=nano, levels=parse_levels("r2n10,r8n10"),
        options=FitOptions(preset=get_preset("encoder")), chunk_seconds=1.0, progress=False,
    )  # fmt: skip
    return source, out, manifest


def _mean_psnr(level) -> float:  # type: ignore[no-untyped-def]
    return float(np.mean([chunk.psnr for chunk in level.chunks]))


def test_quality_floor_on_footage_nano_never_saw(demo_ladder) -> None:
    _, _, manifest = demo_ladder
    assert _mean_psnr(manifest.levels[1]) >= QUALITY_FLOOR_DB


def test_the_prompt_carries_the_picture(nano, demo_ladder) -> None:
    """Quality rises with rank, and every level beats the stream's start latent redrawn for
    every frame (what a generator that ignores its prompt shows)."""
    source, out, manifest = demo_ladder
    r2, r8 = (_mean_psnr(level) for level in manifest.levels)
    assert r8 >= r2 + RANK_GAIN_FLOOR_DB
    start = start_latent_clip(nano, Ladder(out), manifest.stream.frames)
    redrawn = float(psnr_per_frame(start.frames, source.frames[: manifest.stream.frames]).mean())
    assert r2 > redrawn + 0.5


def test_the_encoder_preset_needs_a_prompt_encoder(tiny_generator, tmp_path) -> None:
    source = load_source(DEMO_CLIP, 64, max_frames=11)
    with pytest.raises(BuildError, match="prompt encoder"):
        build_ladder(
            source, tmp_path / "ladder", generator=tiny_generator, levels=parse_levels("r2n10"),
            options=FitOptions(preset=get_preset("encoder")), chunk_seconds=1.0, progress=False,
        )  # fmt: skip


def test_the_training_pass_is_the_stream_the_decoder_plays(nano) -> None:
    """simulate_stream's frames equal GeneratorStream's for the same quantised keyframes, and a
    clip of a mixed-rank batch gets exactly the contexts of its own rank."""
    unet, autoencoder = load_nano()
    encoder = PromptEncoder().eval()
    rng = np.random.default_rng(2)
    frames = torch.from_numpy(rng.uniform(-1, 1, (21, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        latents = autoencoder.encoder(frames)[None]
        init = latents[:, 0]
        simulated = simulate_stream(
            unet, autoencoder.decoder, encoder, latents, init, ranks=4, interval=10, chunk_frames=20
        )
        # A mixed-rank batch: clip 1 at rank 4 beside a rank-1 clip is clip 1 of an all-rank-4
        # batch of the same inputs (same batch, so the same arithmetic), to the bit.
        pair, pair_init = latents.expand(2, -1, -1, -1, -1), init.expand(2, -1, -1, -1)
        mixed, uniform = (
            simulate_stream(unet, autoencoder.decoder, encoder, pair, pair_init,
                            ranks=torch.tensor(ranks), interval=10, chunk_frames=20)
            for ranks in ([1, 4], [4, 4])
        )  # fmt: skip
        # The same keyframes, in the order and with the previous latents the pass used.
        prevs = [init, init, simulated.x0[:, 9]]
        factors = [
            keyframe_factors(encoder, latents[:, f], p, torch.tensor([4]))
            for f, p in zip((0, 10, 20), prevs, strict=True)
        ]
    assert torch.equal(mixed.images[1], uniform.images[1])
    assert not torch.equal(mixed.images[0], uniform.images[0])
    keyframes = tuple(
        Keyframe(f, quantize_tensor(u[0]), quantize_tensor(v[0]))
        for f, (u, v) in zip((0, 10, 20), (rank_context(k, 4) for k in factors), strict=True)
    )
    stream = StreamInfo(30.0, 64, 64, 21, 20, nano.generator_id, nano.name, latent=NANO_LATENT)
    decoder = nano.open_stream(width=64, height=64, init_latent=init.numpy())
    played = np.concatenate(
        [
            decoder.decode_chunk(c)
            for c in split_into_chunks(keyframes, stream, level=0, interval=10)
        ]
    )
    expected = ((simulated.images[0].clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(played.astype(np.float64) - expected).mean() < 0.5


def test_one_training_step_checkpoint_resume_and_export(tmp_path) -> None:
    rng = np.random.default_rng(3)
    clips = {"a": rng.integers(0, 255, (24, 64, 80, 3), dtype=np.uint8)}
    config = TrainConfig(minutes=0.0, sizes=(64,), batch=2, groups=(1,), intervals=(5,), ranks=(2,))
    trainer = NanoTrainer(config, torch.device("cpu"))
    frames, init_frames = ClipBank(clips, torch.device("cpu"), random.Random(0)).sample(2, 6, 64)
    assert frames.shape == (2, 6, 3, 64, 64) and init_frames.shape == (2, 3, 64, 64)
    before = trainer.unet.core.latent_out.weight.detach().clone()
    decoder_before = trainer.autoencoder.decoder.layers[0].weight.detach().clone()
    terms = trainer.losses(frames, init_frames, torch.tensor([1, 2]), interval=5)
    assert all(torch.isfinite(value) for value in terms.values())
    terms["stream"].backward(retain_graph=True)
    assert trainer.autoencoder.decoder.layers[0].weight.grad is None  # held for the stream term
    terms["total"].backward()
    trainer.optimizer.step()
    assert not torch.equal(before, trainer.unet.core.latent_out.weight)
    assert not torch.equal(decoder_before, trainer.autoencoder.decoder.layers[0].weight)
    save_checkpoint(trainer, tmp_path / "ckpt")
    again = NanoTrainer(config, torch.device("cpu"))
    resume_checkpoint(again, tmp_path / "ckpt")
    assert torch.equal(again.unet.core.latent_out.weight, trainer.unet.core.latent_out.weight)
    export_shipped_weights(trainer, tmp_path / "nano.safetensors", tmp_path / "prompts.safetensors")
    load_nano(tmp_path / "nano.safetensors")  # the shipped loader accepts what training exports
    # A later session starts from the exported (float16) files alone, no optimiser state.
    shipped = NanoTrainer(config, torch.device("cpu"))
    load_shipped_weights(shipped, tmp_path / "nano.safetensors", tmp_path / "prompts.safetensors")
    assert torch.allclose(
        shipped.unet.core.latent_out.weight, trainer.unet.core.latent_out.weight, atol=1e-2
    )
    assert not shipped.optimizer.state


def test_held_out_scores_and_sample_sheet(tmp_path) -> None:
    trainer = NanoTrainer(TrainConfig(), torch.device("cpu"))
    frames = torch.rand(21, 3, 64, 64) * 2 - 1
    scores = evaluate_clip(trainer, frames)
    ranks = [f"r{rank}n10" for rank in EVAL_RANKS]
    assert list(scores) == ["autoencoder", "start_redrawn", *ranks]
    assert all(np.isfinite(value) for value in scores.values())
    assert all(module.training for module in trainer.modules().values())  # back in training mode
    write_samples(trainer, frames, tmp_path / "samples.png")
    from PIL import Image

    assert Image.open(tmp_path / "samples.png").size == (
        2 * 64,
        2 * 64,
    )  # frames 0 and 15, two rows


def test_the_learning_rate_warms_up_then_follows_one_cosine_across_runs() -> None:
    config = TrainConfig(minutes=5.0, elapsed_minutes=5.0, lr=1e-3, warmup_steps=10)
    assert learning_rate(config, 0, 0.0) == pytest.approx(1e-4)  # first step after a fresh Adam
    assert learning_rate(config, 9, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 50, 5.0) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))  # halfway
    assert learning_rate(config, 50, 10.0) == pytest.approx(1e-3 * 0.05)  # the floor at the end
    config.schedule_minutes = 20.0  # the cosine spans later runs too
    assert learning_rate(config, 50, 10.0) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))


def test_frame_pack_round_trip(tmp_path) -> None:
    ramp = np.linspace(0, 255, 24, dtype=np.float32)
    smooth = np.broadcast_to(ramp[None, None, :, None], (3, 16, 24, 3)).astype(np.uint8)
    clips = {"x": smooth, "y": np.zeros((2, 16, 16, 3), np.uint8)}
    write_frame_pack(tmp_path / "pack.npz", clips)
    back = read_frame_pack(tmp_path / "pack.npz")
    assert list(back) == ["x", "y"] and back["x"].shape == (3, 16, 24, 3)
    assert np.abs(back["x"].astype(int) - clips["x"]).mean() < 3  # JPEG, close but not lossless


def test_the_manifest_names_source_licence_and_attribution_of_every_clip() -> None:
    clips = load_manifest()
    assert {c.role for c in clips} == {TRAIN, HELD_OUT}
    for clip in clips:
        assert clip.licence.startswith("CC-BY") and clip.attribution and len(clip.sha256) == 64
        assert len(clip.commit) == 40 and clip.repo.count("/") == 1
    assert "sky" in json.loads(MANIFEST.read_text())["never_train_on"][0]
    held_out = [c for c in clips if c.role == HELD_OUT]
    assert [c.path for c in held_out] == ["data/demo_videos/clip_02_caminandes.mp4"]


def test_the_demo_clip_is_small_and_carries_its_licence() -> None:
    assert DEMO_CLIP.stat().st_size <= 2**20
    licence = (DEMO_CLIP.parent / "LICENSE.md").read_text()
    assert "CC BY 3.0" in licence and "Blender Foundation" in licence
