"""The codec layer: frames -> fragmented MP4 (an init segment, then one media segment per chunk).

:class:`SegmentMuxer` is the two-method contract the pipeline uses; :class:`H264Muxer` is
the PyAV/libx264 implementation. Each chunk is encoded by a fresh encoder and muxer, so
every media segment starts with an IDR frame and stands alone: a level switch or a seek
needs nothing special, and the segment's baseMediaDecodeTime (tfdt) is simply the chunk's
first frame on the stream's timeline (``frag_discont`` with ``avoid_negative_ts=disabled``
keeps FFmpeg from shifting it to zero). A fresh x264 at these sizes opens in a few ms.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from client_daemon.mp4 import SEGMENT_BOXES, Mp4FormatError, box_types, mime_type, split_init

# empty_moov: ftyp+moov first, samples only in fragments; frag_keyframe: a fragment per IDR
# (one per chunk, since keyint is infinite); default_base_moof: offsets relative to moof,
# as MSE wants; frag_discont: tfdt = first frame's time; skip_trailer: no mfra at close.
MOVFLAGS = "empty_moov+frag_keyframe+default_base_moof+frag_discont+skip_trailer"
RATE_DENOMINATOR_LIMIT = 1001  # fps like 29.97 become 30000/1001


@dataclass(frozen=True)
class EncoderSettings:
    """x264 settings of the local link: fast and near-lossless (bitrate is free on loopback)."""

    preset: str = "ultrafast"  # x264 preset; ultrafast = Constrained Baseline, no CABAC
    crf: int = 10  # constant rate factor; ~0.1 dB PSNR lost on generated frames (docs/daemon.md)
    threads: int = 0  # x264 threads, 0 = one per core (sliced threads under zerolatency)

    def x264_options(self) -> dict[str, str]:
        """PyAV stream options for libx264."""
        return {
            "preset": self.preset,
            "tune": "zerolatency",  # no lookahead, no B-frames: a frame in, a packet out
            "crf": str(self.crf),
            # one IDR per chunk (the fresh encoder's first frame); BT.601 limited range is
            # what swscale's rgb24 -> yuv420p produces, so the page decodes the same matrix
            "x264-params": "keyint=infinite:scenecut=0:"
            "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m",
        }


NEAR_LOSSLESS = EncoderSettings()


class SegmentMuxer(ABC):
    """Frames of one stream -> fMP4 init segment + one moof+mdat media segment per chunk."""

    @abstractmethod
    def init_segment(self) -> bytes:
        """The stream's init segment (ftyp+moov), the same bytes on every call."""

    @abstractmethod
    def media_segment(self, batches: Iterable[np.ndarray], first_frame: int) -> bytes:
        """One media segment (moof+mdat, starting with a keyframe) of the frames in ``batches``.

        ``batches`` yields uint8 arrays [n, height, width, 3] (RGB) as generation produces
        them, so encoding can overlap generation; ``first_frame`` is the stream frame index of
        the first frame and sets the segment's timestamp.
        """

    def mime(self) -> str:
        """MIME type with the codec string read from the init segment."""
        return mime_type(self.init_segment())


class H264Muxer(SegmentMuxer):
    """PyAV libx264 + FFmpeg's fragmented-MP4 muxer, one fresh encoder per media segment."""

    def __init__(
        self, width: int, height: int, fps: float, settings: EncoderSettings = NEAR_LOSSLESS
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"frame size must be positive and even, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.width = width
        self.height = height
        self.rate = Fraction(fps).limit_denominator(RATE_DENOMINATOR_LIMIT)
        self.settings = settings
        self._init: bytes | None = None

    def _open(self, sink: io.BytesIO):  # -> (OutputContainer, VideoStream)
        import av  # heavy import kept out of module import (CLI startup)

        container = av.open(
            sink,
            "w",
            format="mp4",
            options={"movflags": MOVFLAGS, "avoid_negative_ts": "disabled"},
        )
        stream = container.add_stream("libx264", rate=self.rate)
        stream.width = self.width
        stream.height = self.height
        stream.pix_fmt = "yuv420p"
        stream.options = self.settings.x264_options()
        stream.codec_context.thread_count = self.settings.threads
        return container, stream

    def init_segment(self) -> bytes:
        if self._init is None:
            sink = io.BytesIO()
            container, _ = self._open(sink)
            container.start_encoding()  # writes ftyp + (empty) moov with the encoder's avcC
            container.close()
            init, rest = split_init(sink.getvalue())
            if rest:
                raise Mp4FormatError(f"unexpected boxes after the init segment: {box_types(rest)}")
            self._init = init
        return self._init

    def media_segment(self, batches: Iterable[np.ndarray], first_frame: int) -> bytes:
        import av

        if first_frame < 0:
            raise ValueError(f"first_frame must be >= 0, got {first_frame}")
        expected_init = self.init_segment()
        sink = io.BytesIO()
        container, stream = self._open(sink)
        time_base = 1 / self.rate
        pts = first_frame
        try:
            for batch in batches:
                self._check_batch(batch)
                for rgb in batch:
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts = pts
                    frame.time_base = time_base
                    container.mux(stream.encode(frame))
                    pts += 1
            if pts == first_frame:
                raise ValueError("a media segment needs at least one frame")
            container.mux(stream.encode(None))  # drain the encoder
        finally:
            container.close()
        init, segment = split_init(sink.getvalue())
        # every fresh encoder must describe the stream exactly as the init segment the page has
        if init != expected_init:
            raise RuntimeError("the encoder produced a different init segment (settings changed?)")
        if box_types(segment) != list(SEGMENT_BOXES):
            raise Mp4FormatError(f"expected one moof+mdat, got {box_types(segment)}")
        return segment

    def _check_batch(self, batch: np.ndarray) -> None:
        shape = (self.height, self.width, 3)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != shape:
            raise ValueError(
                f"frames must be uint8 [n, {self.height}, {self.width}, 3], "
                f"got {batch.dtype} {list(batch.shape)}"
            )
