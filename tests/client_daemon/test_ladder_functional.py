"""A Python page plays a whole ladder through the daemon and gets one valid, continuous fMP4."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest

from client_daemon.client import DaemonClient
from client_daemon.daemon import Daemon
from client_daemon.mp4 import box_types, segment_sample_count
from client_daemon.muxer import EncoderSettings
from client_daemon.settings import DaemonSettings
from engines.psnr import frames_psnr_db as psnr
from prompts import testing
from prompts.chunk import encode_chunk, make_prefix, parse_chunk
from prompts.ladder import Ladder
from tests.client_daemon.helpers import (
    CHUNK_FRAMES,
    FPS,
    FRAMES,
    INIT_SEED,
    INTERVAL,
    MIN_PSNR_VS_YUV420_DB,
    SIZE,
    decode_fmp4,
    reference_frames,
    yuv420_reference,
)

LEVEL_OF_CHUNK = [0, 0, 1, 1]  # the page's ABR goes up one level at chunk 2
GOP_FRAMES = 2  # two GOP segments a chunk


def write_ladder(path: Path, generator_id: str) -> Ladder:
    return testing.write_ladder(
        path,
        generator_id,
        levels=[("r2n2", 2, INTERVAL), ("r4n2", 4, INTERVAL)],  # make_chunk's levels 0 and 1
        frames=FRAMES,
        fps=FPS,
        size=SIZE,
        chunk_frames=CHUNK_FRAMES,
        init_seed=INIT_SEED,
    )


@pytest.mark.slow
async def test_a_page_plays_a_ladder_frame_for_frame(tmp_path: Path, tiny_generator) -> None:  # noqa: ANN001
    ladder = write_ladder(tmp_path / "sky", tiny_generator.generator_id)
    settings = DaemonSettings(port=0, encoder=EncoderSettings(gop_frames=GOP_FRAMES))
    async with Daemon(tiny_generator, settings) as daemon:
        async with await DaemonClient.connect(daemon.url) as page:
            init = await page.open_ladder(ladder)
            segments = []
            previous_level = None
            for index, level in enumerate(LEVEL_OF_CHUNK):
                prefix = b""
                if previous_level not in (None, level):  # a switch: the new level's prefix
                    prefix = encode_chunk(
                        make_prefix(parse_chunk(ladder.chunk_bytes(level, index - 1)))
                    )
                await page.send_chunk(level, index, ladder.chunk_bytes(level, index), prefix)
                previous_level = level
            for index, level in enumerate(LEVEL_OF_CHUNK):
                parts = await page.chunk_segments()  # one segment per GOP, in order
                frames = min(CHUNK_FRAMES, FRAMES - index * CHUNK_FRAMES)  # the last chunk is short
                count = -(-frames // GOP_FRAMES)
                assert [(s.chunk, s.level, s.part, s.parts) for s in parts] == [
                    (index, level, part, count) for part in range(count)
                ]
                for segment in parts:
                    assert box_types(segment.data) == ["moof", "mdat"]
                    assert segment_sample_count(segment.data) == segment.frames == GOP_FRAMES
                    segments.append(segment.data)
    fmp4 = init.data + b"".join(segments)
    with av.open(io.BytesIO(fmp4)) as container:  # one valid file, one video track
        assert container.streams.video[0].codec_context.name == "h264"
        assert (container.streams.video[0].width, container.streams.video[0].height) == (SIZE, SIZE)
    decoded = decode_fmp4(fmp4)
    assert [round(f.time_s * FPS) for f in decoded] == list(range(FRAMES))
    assert [i for i, f in enumerate(decoded) if f.key] == list(
        range(0, FRAMES, GOP_FRAMES)
    )  # an IDR a GOP
    plan = [(level, index, index == 2) for index, level in enumerate(LEVEL_OF_CHUNK)]
    expected = reference_frames(tiny_generator, plan)
    engine = [frame for level, index, _ in plan for frame in expected[(level, index)]]
    for frame, rgb in zip(decoded, engine, strict=True):
        assert psnr(frame.rgb, yuv420_reference(rgb)) >= MIN_PSNR_VS_YUV420_DB
