"""ISO-BMFF helpers on real PyAV output and on broken bytes."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from client_daemon.mp4 import (
    Mp4FormatError,
    annexb_to_avcc,
    avc_codec_string,
    box_types,
    find_box,
    fragment,
    iter_boxes,
    mime_type,
    segment_decode_time,
    segment_sample_count,
    split_init,
    track_timescale,
)
from client_daemon.muxer import MOVFLAGS, H264Muxer
from tests.client_daemon.helpers import segment_samples


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


@pytest.fixture(scope="module")
def muxed() -> tuple[bytes, bytes]:
    muxer = H264Muxer(64, 64, 25)
    frames = np.random.RandomState(0).randint(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    return muxer.init_segment(), muxer.media_segment([frames], 50)


def test_init_segment_is_ftyp_moov_with_avc_codec_string(muxed: tuple[bytes, bytes]) -> None:
    init, _ = muxed
    assert box_types(init) == ["ftyp", "moov"]
    codec = avc_codec_string(init)
    # ultrafast x264 = Constrained Baseline (42 C0); the level byte follows size and rate
    assert codec.startswith("avc1.42C0"), codec
    avcc_level = int(codec[-2:], 16)
    assert 10 <= avcc_level <= 52
    assert mime_type(init) == f'video/mp4; codecs="{codec}"'


def test_codec_string_is_read_from_the_avcc_bytes(muxed: tuple[bytes, bytes]) -> None:
    init, _ = muxed
    patched = bytearray(init)
    at = bytes(init).index(b"avcC") + 4  # payload: version, profile, compatibility, level
    patched[at + 1 : at + 4] = bytes([0x64, 0x00, 0x28])
    assert avc_codec_string(bytes(patched)) == "avc1.640028"


def test_segment_tfdt_and_sample_count(muxed: tuple[bytes, bytes]) -> None:
    init, segment = muxed
    assert box_types(segment) == ["moof", "mdat"]
    assert segment_sample_count(segment) == 3
    # frame 50 at 25 fps = 2 s on the track's clock
    assert segment_decode_time(segment) == 2 * track_timescale(init)


def test_split_init_separates_header_and_fragments(muxed: tuple[bytes, bytes]) -> None:
    init, segment = muxed
    assert split_init(init + segment) == (init, segment)
    with pytest.raises(Mp4FormatError, match="does not start with ftyp"):
        split_init(segment)


def test_large_size_and_open_ended_boxes() -> None:
    large = struct.pack(">I4sQ", 1, b"free", 16 + 3) + b"abc"
    open_ended = struct.pack(">I4s", 0, b"mdat") + b"xyz"
    assert list(iter_boxes(large + open_ended)) == [("free", b"abc"), ("mdat", b"xyz")]


@pytest.mark.parametrize(
    ("data", "defect"),
    [
        (b"\x00\x00\x00", "truncated box header"),
        (struct.pack(">I4s", 100, b"moov") + b"short", "claims 100 bytes"),
        (struct.pack(">I4s", 4, b"moov"), "claims 4 bytes"),
        (struct.pack(">I4s", 1, b"moov") + b"\x00", "truncated 64-bit box size"),
    ],
)
def test_broken_boxes_name_the_defect(data: bytes, defect: str) -> None:
    with pytest.raises(Mp4FormatError, match=defect):
        box_types(data)


def test_missing_boxes_are_reported() -> None:
    init = _box(b"ftyp", b"iso5") + _box(b"moov", _box(b"mvhd", b"\x00" * 8))
    with pytest.raises(Mp4FormatError, match="no 'trak' box on the path moov/trak/mdia/mdhd"):
        track_timescale(init)
    with pytest.raises(Mp4FormatError, match="no 'trak'"):
        avc_codec_string(init)
    assert find_box(init, "moov/mvhd") == b"\x00" * 8


def ffmpeg_fragment(frames: np.ndarray, first_frame: int, fps: int) -> tuple[bytes, bytes]:
    """FFmpeg's own fMP4 (init, one moof+mdat) of ``frames`` from a fresh x264, as muxed before."""
    muxer = H264Muxer(64, 64, fps)
    sink = io.BytesIO()
    options = {"movflags": MOVFLAGS + "+frag_discont", "avoid_negative_ts": "disabled"}
    with av.open(sink, "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        muxer._configure(stream.codec_context)
        for offset, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = first_frame + offset
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return split_init(sink.getvalue())


@pytest.mark.parametrize(("count", "first_frame", "fps"), [(2, 0, 30), (3, 50, 25), (10, 997, 24)])
def test_fragment_writes_what_ffmpeg_writes(count: int, first_frame: int, fps: int) -> None:
    frames = np.random.RandomState(count).randint(0, 256, (count, 64, 64, 3), dtype=np.uint8)
    init, segment = ffmpeg_fragment(frames, first_frame, fps)
    ticks = track_timescale(init) // fps
    assert fragment(segment_samples(segment), first_frame * ticks, ticks) == segment


def test_a_one_sample_fragment() -> None:
    segment = fragment([b"\x00\x00\x00\x02\x65\x88"], 7, 3)
    assert box_types(segment) == ["moof", "mdat"]
    assert segment_sample_count(segment) == 1 and segment_decode_time(segment) == 7
    assert segment_samples(segment) == [b"\x00\x00\x00\x02\x65\x88"]
    with pytest.raises(ValueError, match="at least one sample"):
        fragment([], 0, 1)


def test_annexb_start_codes_become_lengths() -> None:
    packet = b"\x00\x00\x01\x06\x05\x80" + b"\x00\x00\x00\x01\x65\x88\x84" + b"\x00\x00\x01\x41\x9a"
    assert annexb_to_avcc(packet) == (
        b"\x00\x00\x00\x03\x06\x05\x80"
        + b"\x00\x00\x00\x03\x65\x88\x84"
        + b"\x00\x00\x00\x02\x41\x9a"
    )
    with pytest.raises(Mp4FormatError, match="no Annex B start code"):
        annexb_to_avcc(b"\x65\x88")
    with pytest.raises(Mp4FormatError, match="no NAL unit"):
        annexb_to_avcc(b"\x00\x00\x00\x01")
