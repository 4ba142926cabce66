"""H264Muxer with real PyAV: init segment, one keyframe-led segment per GOP, handed out early, timestamps."""

from __future__ import annotations

import struct
import threading
import time

import av
import numpy as np
import pytest
import torch

from client_daemon import muxer as muxer_module
from client_daemon.mp4 import (
    box_types,
    segment_decode_time,
    track_timescale,
)
from client_daemon.muxer import EncoderSettings, GopSegment, H264Muxer
from engines.colour import levels_to_yuv420p
from engines.psnr import frames_psnr_db as psnr
from tests.client_daemon.helpers import (
    MIN_PSNR_VS_YUV420_DB,
    decode_fmp4,
    segment_samples,
    yuv420_reference,
)

FPS = 30


def moving_pictures(count: int, start: int = 0, size: int = 64) -> np.ndarray:
    """Smooth colour waves and a moving disc: content that changes from frame to frame."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for t in range(start, start + count):
        rgb = np.stack(
            [
                127 + 100 * np.sin(x / 9 + t / 5),
                127 + 100 * np.sin(y / 11 - t / 7),
                127 + 100 * np.sin((x + y) / 13 + t / 3),
            ],
            axis=-1,
        )
        rgb[(x - size / 2 - 10 * np.sin(t / 4)) ** 2 + (y - size / 2) ** 2 < (size / 6) ** 2] = 220
        frames.append(rgb.clip(0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.fixture(scope="module")
def muxer() -> H264Muxer:
    return H264Muxer(64, 64, FPS)


def test_init_segment_is_stable_and_names_its_codec(muxer: H264Muxer) -> None:
    init = muxer.init_segment()
    assert init == H264Muxer(64, 64, FPS).init_segment()
    assert muxer.mime().startswith('video/mp4; codecs="avc1.')


def test_segments_decode_to_the_frames_within_the_encode_tolerance(muxer: H264Muxer) -> None:
    first = moving_pictures(5)
    second = moving_pictures(3, start=5)
    segments = [
        muxer.media_segment([first[:2], first[2:]], 0),  # batches as generation yields them
        muxer.media_segment([second], 5),
    ]
    decoded = decode_fmp4(muxer.init_segment() + b"".join(segments))
    source = np.concatenate([first, second])
    assert len(decoded) == len(source)
    assert [frame.key for frame in decoded] == [
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    for index, (frame, rgb) in enumerate(zip(decoded, source, strict=True)):
        assert frame.time_s == pytest.approx(index / FPS)
        assert psnr(frame.rgb, yuv420_reference(rgb)) >= MIN_PSNR_VS_YUV420_DB
        # frame for frame: each decoded picture is closest to its own source frame
        others = [psnr(frame.rgb, other) for j, other in enumerate(source) if j != index]
        assert psnr(frame.rgb, rgb) > max(others)


def test_a_jump_places_the_segment_on_the_stream_timeline(muxer: H264Muxer) -> None:
    """A seek or a switch: each segment's tfdt is its first frame's time, whatever came before."""
    timescale = track_timescale(muxer.init_segment())
    later = muxer.media_segment([moving_pictures(2, start=90)], 90)
    earlier = muxer.media_segment([moving_pictures(2)], 0)
    assert segment_decode_time(later) == 3 * timescale
    assert segment_decode_time(earlier) == 0
    times = [f.time_s for f in decode_fmp4(muxer.init_segment() + later)]
    assert times == pytest.approx([3.0, 3 + 1 / FPS])


def test_fractional_rate_keeps_exact_frame_times() -> None:
    muxer = H264Muxer(64, 64, 30000 / 1001)
    segment = muxer.media_segment([moving_pictures(2)], 1001)
    times = [f.time_s for f in decode_fmp4(muxer.init_segment() + segment)]
    assert times == pytest.approx([1001 * 1001 / 30000, 1002 * 1001 / 30000])


def test_higher_crf_means_fewer_bytes() -> None:
    frames = [moving_pictures(4)]
    fine = H264Muxer(64, 64, FPS, EncoderSettings(crf=4)).media_segment(frames, 0)
    coarse = H264Muxer(64, 64, FPS, EncoderSettings(crf=30)).media_segment(frames, 0)  # one GOP
    assert box_types(coarse) == ["moof", "mdat"]
    assert len(coarse) < len(fine)


@pytest.mark.parametrize(
    ("batch", "defect"),
    [
        (
            np.zeros((1, 32, 64, 3), np.uint8),
            r"frames must be uint8 \[n, 64, 64, 3\] \(rgb24\) or \[n, 96, 64\] \(yuv420p\), got uint8 \[1, 32, 64, 3\]",
        ),
        (np.zeros((1, 64, 64, 3), np.float32), "got float32"),
        (np.zeros((64, 64, 3), np.uint8), r"got uint8 \[64, 64, 3\]"),
    ],
)
def test_bad_frames_are_refused(muxer: H264Muxer, batch: np.ndarray, defect: str) -> None:
    with pytest.raises(ValueError, match=defect):
        muxer.media_segment([batch], 0)


def test_empty_chunk_and_bad_arguments_are_refused(muxer: H264Muxer) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        muxer.media_segment([], 0)
    with pytest.raises(ValueError, match="first_frame must be >= 0"):
        muxer.media_segment([moving_pictures(1)], -1)
    with pytest.raises(ValueError, match="positive and even"):
        H264Muxer(63, 64, FPS)
    with pytest.raises(ValueError, match="fps must be positive"):
        H264Muxer(64, 64, 0)


def test_a_failing_frame_source_propagates(muxer: H264Muxer) -> None:
    def batches():
        yield moving_pictures(1)
        raise RuntimeError("generation broke")

    with pytest.raises(RuntimeError, match="generation broke"):
        muxer.media_segment(batches(), 0)


def test_long_chunks_are_cut_into_parallel_gops_one_segment_each() -> None:
    settings = EncoderSettings(gop_frames=4, encoders=3, threads=1)
    muxer = H264Muxer(64, 64, FPS, settings)
    frames = moving_pictures(10)
    gops: list[GopSegment] = []
    muxer.encode_gops([frames[:3], frames[3:]], 20, gops.append)  # GOPs cross batch edges
    assert [(g.first_frame, g.frames) for g in gops] == [(20, 4), (24, 4), (28, 2)]
    assert muxer.gop_count(10) == 3
    timescale = track_timescale(muxer.init_segment())
    for gop in gops:
        assert box_types(gop.data) == ["moof", "mdat"] and gop.encode_ms > 0
        assert segment_decode_time(gop.data) == gop.first_frame * timescale // FPS
        alone = decode_fmp4(
            muxer.init_segment() + gop.data
        )  # each stands alone: a seek may land on it
        assert alone[0].key and round(alone[0].time_s * FPS) == gop.first_frame
    decoded = decode_fmp4(muxer.init_segment() + b"".join(g.data for g in gops))
    assert [i for i, f in enumerate(decoded) if f.key] == [0, 4, 8]
    assert [round(f.time_s * FPS) for f in decoded] == list(range(20, 30))
    one = H264Muxer(64, 64, FPS, EncoderSettings(gop_frames=4, encoders=1))
    serial = decode_fmp4(one.init_segment() + one.media_segment([frames], 20))
    for parallel, alone, rgb in zip(decoded, serial, frames, strict=True):
        # the same pictures, whichever encoder encoded them (one reused for GOP after GOP keeps
        # its rate control's memory of them, so the two differ by a little more than rounding)
        assert psnr(parallel.rgb, yuv420_reference(rgb)) >= MIN_PSNR_VS_YUV420_DB
        assert psnr(alone.rgb, yuv420_reference(rgb)) >= MIN_PSNR_VS_YUV420_DB
        assert psnr(parallel.rgb, alone.rgb) > 40


def test_a_gop_is_handed_out_before_the_next_frames_arrive() -> None:
    """The first GOP's segment goes out while the rest of the chunk is still being generated."""
    muxer = H264Muxer(64, 64, FPS, EncoderSettings(gop_frames=4, encoders=2, threads=1))
    frames = moving_pictures(8)
    first_out = threading.Event()
    seen_before_rest: list[bool] = []

    def batches():
        yield frames[:4]
        seen_before_rest.append(
            first_out.wait(timeout=60)
        )  # generation of the rest "takes" until then
        yield frames[4:]

    delivered: list[GopSegment] = []

    def deliver(gop: GopSegment) -> None:
        delivered.append(gop)
        first_out.set()

    muxer.encode_gops(batches(), 0, deliver)
    assert seen_before_rest == [True]
    assert [g.first_frame for g in delivered] == [0, 4]
    assert delivered[0].ready_at <= delivered[1].ready_at


def test_planar_yuv_frames_encode_like_rgb_ones() -> None:
    """Frames converted on the generator's device (engines.colour) give the pictures RGB input gives."""
    rgb = moving_pictures(4)
    planar = levels_to_yuv420p(torch.from_numpy(rgb).permute(0, 3, 1, 2).float()).numpy()
    muxer = H264Muxer(64, 64, FPS)
    from_rgb = decode_fmp4(muxer.init_segment() + muxer.media_segment([rgb], 0))
    from_yuv = decode_fmp4(muxer.init_segment() + muxer.media_segment([planar[:1], planar[1:]], 0))
    for a, b, source in zip(from_rgb, from_yuv, rgb, strict=True):
        assert psnr(b.rgb, yuv420_reference(source)) >= MIN_PSNR_VS_YUV420_DB
        assert psnr(a.rgb, b.rgb) > 40  # inputs within one level; crf 10 rounds them apart a little


def test_a_failing_gop_stops_the_deliveries() -> None:
    muxer = H264Muxer(64, 64, FPS, EncoderSettings(gop_frames=2, encoders=2, threads=1))
    delivered: list[GopSegment] = []

    def batches():
        yield moving_pictures(2)
        yield moving_pictures(1, start=2)
        raise RuntimeError("generation broke")

    with pytest.raises(RuntimeError, match="generation broke"):
        muxer.encode_gops(batches(), 0, delivered.append)
    assert [g.first_frame for g in delivered] in ([], [0])  # nothing after the failure point


def test_bad_encoder_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="bad encoder settings"):
        EncoderSettings(gop_frames=0)


def test_close_ends_the_encoder_threads() -> None:
    def encoder_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("promptus-x264")}

    before = encoder_threads()  # other tests' pools may still be winding down
    with H264Muxer(64, 64, FPS, EncoderSettings(encoders=2, gop_frames=4)) as muxer:
        muxer.media_segment([moving_pictures(12)], 0)  # three GOPs: the pool encodes them
        ours = encoder_threads() - before
        assert ours
    for thread in ours:  # the pool's threads exit once their queue is closed
        thread.join(timeout=5.0)
    assert not any(thread.is_alive() for thread in ours)
    with pytest.raises(RuntimeError):
        muxer.media_segment([moving_pictures(4)], 0)  # closed: encodes nothing more


def sample_nal_types(segment: bytes) -> list[list[int]]:
    """NAL unit types of each sample of a moof+mdat (AVCC: NAL units behind 4-byte lengths)."""
    types = []
    for sample in segment_samples(segment):
        nals = []
        while sample:
            (length,) = struct.unpack_from(">I", sample)
            nals.append(sample[4] & 0x1F)
            sample = sample[4 + length :]
        types.append(nals)
    return types


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The x264 encoders the muxers open during a test."""
    encoders: list[object] = []
    original = muxer_module._Encoder.__init__

    def counting(self: object, muxer: H264Muxer) -> None:
        original(self, muxer)
        encoders.append(self)

    monkeypatch.setattr(muxer_module._Encoder, "__init__", counting)
    return encoders


def test_encoders_open_once_with_the_muxer_and_serve_every_chunk(opened: list[object]) -> None:
    """A seek (forwards and back), a short last GOP: the same encoders, an IDR at every segment."""
    muxer = H264Muxer(64, 64, FPS, EncoderSettings(gop_frames=4, encoders=2, threads=1))
    init = muxer.init_segment()
    deadline = time.monotonic() + 30
    while len(opened) < 2 and time.monotonic() < deadline:  # opening in the background
        time.sleep(0.01)
    assert len(opened) == 2  # before the first chunk: off the first segment's path
    timescale = track_timescale(init)
    gops: list[GopSegment] = []
    for first_frame, count in ((0, 10), (300, 7), (40, 8), (41, 1)):  # not contiguous
        muxer.encode_gops([moving_pictures(count, start=first_frame)], first_frame, gops.append)
    assert len(opened) == 2  # one per parallel encoder, none for a GOP or a chunk
    assert [(g.first_frame, g.frames) for g in gops] == [
        (0, 4), (4, 4), (8, 2), (300, 4), (304, 3), (40, 4), (44, 4), (41, 1)
    ]  # fmt: skip
    for gop in gops:
        types = sample_nal_types(gop.data)
        assert len(types) == gop.frames
        assert 5 in types[0] and not any(5 in later for later in types[1:])  # IDR first only
        assert segment_decode_time(gop.data) == gop.first_frame * timescale // FPS
        alone = decode_fmp4(init + gop.data)
        assert [round(f.time_s * FPS) for f in alone] == list(
            range(gop.first_frame, gop.first_frame + gop.frames)
        )
        assert [f.key for f in alone] == [True] + [False] * (gop.frames - 1)
        source = moving_pictures(gop.frames, start=gop.first_frame)
        for frame, rgb in zip(alone, source, strict=True):
            assert psnr(frame.rgb, yuv420_reference(rgb)) >= MIN_PSNR_VS_YUV420_DB


def test_segments_play_from_any_segment_in_any_order() -> None:
    """Every GOP stands alone: init + the segments from any one on decode fully, and a decoder
    fed whole segments in any order (MSE places them by time) decodes each to its own frames."""
    muxer = H264Muxer(64, 64, FPS, EncoderSettings(gop_frames=3, encoders=2, threads=1))
    gops: list[GopSegment] = []
    muxer.encode_gops([moving_pictures(8)], 0, gops.append)
    muxer.encode_gops([moving_pictures(5, start=60)], 60, gops.append)  # a seek
    init = muxer.init_segment()

    def frames_of(gop: GopSegment) -> list[int]:
        return list(range(gop.first_frame, gop.first_frame + gop.frames))

    for start in range(len(gops)):
        decoded = decode_fmp4(init + b"".join(g.data for g in gops[start:]))
        assert [round(f.time_s * FPS) for f in decoded] == sum(map(frames_of, gops[start:]), [])
        assert [f.key for f in decoded][:1] == [True]
    at = init.index(b"avcC")
    (avcc_size,) = struct.unpack_from(">I", init, at - 4)
    for order in ([4, 0, 2], [2, 4, 0, 3, 1], [1, 1, 0]):
        decoder = av.CodecContext.create("h264", "r")
        decoder.extradata = init[at + 4 : at - 4 + avcc_size]  # the avcC payload
        for index in order:
            gop = gops[index]
            pictures = [
                picture.to_ndarray(format="rgb24")
                for sample in segment_samples(gop.data)
                for picture in decoder.decode(av.Packet(sample))
            ]
            source = moving_pictures(gop.frames, start=gop.first_frame)
            assert len(pictures) == gop.frames  # a packet in, a picture out: no reordering
            for picture, rgb in zip(pictures, source, strict=True):
                assert psnr(picture, yuv420_reference(rgb)) >= MIN_PSNR_VS_YUV420_DB


def test_a_failed_encoder_is_replaced(
    opened: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    muxer = H264Muxer(64, 64, FPS, EncoderSettings(gop_frames=4, encoders=1, threads=1))
    muxer.media_segment([moving_pictures(4)], 0)
    original = muxer_module._Encoder.encode_gop

    def broken(self: object, frames: list[np.ndarray]) -> list[bytes]:
        raise RuntimeError("x264 broke")

    monkeypatch.setattr(muxer_module._Encoder, "encode_gop", broken)
    with pytest.raises(RuntimeError, match="x264 broke"):
        muxer.media_segment([moving_pictures(4)], 4)
    monkeypatch.setattr(muxer_module._Encoder, "encode_gop", original)
    segment = muxer.media_segment([moving_pictures(4, start=8)], 8)
    assert len(opened) == 2  # the broken one is dropped, a fresh one takes its place
    assert [f.key for f in decode_fmp4(muxer.init_segment() + segment)] == [True] + [False] * 3
