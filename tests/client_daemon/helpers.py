"""Helpers of the daemon tests: a small tiny-generator stream, fMP4 decoding and samples, PSNR."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import numpy as np

from client_daemon.mp4 import find_box, segment_sample_count
from prompts.chunk import PromptChunk, make_prefix
from prompts.init_state import encode_init_state
from prompts.testing import seeded_latent
from tests.prompts.factories import chunk_of
from wire.daemon import Open, StreamSetup
from wire.testing import FIXTURE_INIT_SEED, fixture_setup

if TYPE_CHECKING:
    from engines.generator import Generator

# A stream small enough for the tiny generator on two busy cores: 64x64, 4-frame chunks.
SIZE = 64  # pixels, width = height
CHUNK_FRAMES = 4
INTERVAL = 2
FRAMES = 14  # 4 chunks, the last one short (2 frames)
FPS = 30
INIT_SEED = FIXTURE_INIT_SEED  # seed of the stream's init state
# Encoder tolerance against the engine's frames, measured on tiny-generator output (saturated
# colour noise: the worst case). yuv420p alone costs ~16.7 dB there, so frames are compared
# with their own yuv420p conversion (what a lossless 4:2:0 codec returns): crf 10 gives
# 41.7 dB mean on 192x192 tiny frames; the bound leaves room for other sizes.
MIN_PSNR_VS_YUV420_DB = 36.0


@dataclass(frozen=True)
class DecodedFrame:
    time_s: float
    rgb: np.ndarray
    key: bool


def decode_fmp4(data: bytes) -> list[DecodedFrame]:
    """Every frame of an fMP4 byte string (init + segments), with its presentation time."""
    with av.open(io.BytesIO(data)) as container:
        return [
            DecodedFrame(float(frame.time), frame.to_ndarray(format="rgb24"), frame.key_frame)
            for frame in container.decode(video=0)
        ]


def segment_samples(segment: bytes) -> list[bytes]:
    """The samples (AVCC access units) of a moof+mdat, cut at the trun sizes."""
    trun = find_box(segment, "moof/traf/trun")
    count = segment_sample_count(segment)
    sizes = struct.unpack_from(f">{count}I", trun, 16)  # after flags, count, offset, first flags
    mdat, at, samples = find_box(segment, "mdat"), 0, []
    for size in sizes:
        samples.append(mdat[at : at + size])
        at += size
    assert at == len(mdat)
    return samples


def yuv420_reference(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` through yuv420p and back: the best any 4:2:0 codec (MSE, browsers) can return."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    return frame.to_ndarray(format="rgb24")


def stream_setup(generator_id: str, *, rule: str = "chunk-reset") -> StreamSetup:
    return fixture_setup(generator_id, size=SIZE, chunk_frames=CHUNK_FRAMES, fps=FPS, rule=rule)


def init_latent() -> np.ndarray:
    return seeded_latent(SIZE, INIT_SEED)


def open_message(generator_id: str, *, rule: str = "chunk-reset") -> Open:
    return Open(
        stream=stream_setup(generator_id, rule=rule),
        init_state=encode_init_state(init_latent()),
        session="test",
    )


def make_chunk(index: int, generator_id: str, *, level: int = 0) -> PromptChunk:
    """Chunk ``index`` of level 0 (rank 2) or level 1 (rank 4) of the test stream."""
    return chunk_of(
        index,
        chunk_frames=CHUNK_FRAMES,
        interval=INTERVAL,
        rank=2 + 2 * level,
        frames=FRAMES,
        level=level,
        generator_id=generator_id,
        seed=100 * level,
    )


def prefix_for(index: int, generator_id: str, *, level: int = 0) -> PromptChunk:
    """The switch prefix of chunk ``index`` (last keyframe of chunk ``index - 1``)."""
    return make_prefix(make_chunk(index - 1, generator_id, level=level))


def reference_frames(
    generator: Generator, plan: list[tuple[int, int, bool]]
) -> dict[tuple[int, int], np.ndarray]:
    """Frames the engine makes for (level, chunk, with prefix) in order, by (level, chunk)."""
    stream = generator.open_stream(width=SIZE, height=SIZE, init_latent=init_latent())
    frames = {}
    for level, index, with_prefix in plan:
        chunk = make_chunk(index, generator.generator_id, level=level)
        prefix = prefix_for(index, generator.generator_id, level=level) if with_prefix else None
        frames[(level, index)] = stream.decode_chunk(chunk, prefix)
    return frames
