"""The codec layer: frames -> fragmented MP4 (an init segment, then one media segment per chunk).

:class:`SegmentMuxer` is the two-method contract the pipeline uses; :class:`H264Muxer` is
the PyAV/libx264 implementation. A chunk is cut into short GOPs that fresh x264 encoders
compress in parallel threads (PyAV releases the GIL), each GOP starting with an IDR frame;
FFmpeg's fragmented-MP4 muxer then writes all packets as one moof+mdat. Every segment
thus starts with a keyframe and stands alone: a level switch or a seek needs nothing
special, and the segment's baseMediaDecodeTime (tfdt) is simply the chunk's first frame on
the stream's timeline (``frag_discont`` with ``avoid_negative_ts=disabled`` keeps FFmpeg
from shifting it to zero).
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from client_daemon.mp4 import SEGMENT_BOXES, Mp4FormatError, box_types, mime_type, split_init

# empty_moov: ftyp+moov first, samples only in fragments; frag_custom: a fragment only at
# close (one moof+mdat per segment, whatever the IDRs); default_base_moof: offsets relative
# to moof, as MSE wants; frag_discont: tfdt = first frame's time; skip_trailer: no mfra.
MOVFLAGS = "empty_moov+frag_custom+default_base_moof+frag_discont+skip_trailer"
RATE_DENOMINATOR_LIMIT = 1001  # fps like 29.97 become 30000/1001
CORES_PER_ENCODER = 4  # default: one parallel GOP encoder per 4 CPU cores


@dataclass(frozen=True)
class EncoderSettings:
    """x264 settings of the local link: fast and near-lossless (bitrate is free on loopback)."""

    preset: str = "ultrafast"  # x264 preset; ultrafast = Constrained Baseline, no CABAC
    crf: int = 10  # constant rate factor; no PSNR lost on generated frames (docs/daemon.md)
    gop_frames: int = 15  # frames per GOP; a chunk's GOPs are encoded in parallel
    encoders: int = 0  # parallel GOP encoders, 0 = one per CORES_PER_ENCODER cores
    threads: int = 0  # x264 (slice) threads per encoder, 0 = cores / encoders

    def __post_init__(self) -> None:
        if self.gop_frames < 1 or self.encoders < 0 or self.threads < 0:
            raise ValueError(f"bad encoder settings: {self}")

    def encoder_count(self) -> int:
        """Parallel GOP encoders to run."""
        return self.encoders or max(1, (os.cpu_count() or 1) // CORES_PER_ENCODER)

    def thread_count(self) -> int:
        """x264 threads of each encoder."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.encoder_count())

    def x264_options(self) -> dict[str, str]:
        """PyAV stream options for libx264."""
        return {
            "preset": self.preset,
            "tune": "zerolatency",  # no lookahead, no B-frames: a frame in, a packet out
            "crf": str(self.crf),
            # one IDR per GOP (each fresh encoder's first frame); BT.601 limited range is
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

    def close(self) -> None:  # noqa: B027 (optional: a muxer holding no threads has nothing to do)
        """Release what the muxer holds (threads); it encodes nothing afterwards."""

    def __enter__(self) -> SegmentMuxer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class H264Muxer(SegmentMuxer):
    """PyAV libx264 encoders (parallel, one per GOP) + FFmpeg's fragmented-MP4 muxer."""

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
        # GOP encoders; their threads end with close()
        self._pool = ThreadPoolExecutor(
            settings.encoder_count(), thread_name_prefix="promptus-x264"
        )

    def close(self) -> None:
        """Stop the GOP encoder threads (an encoding in progress finishes; queued ones are dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _configure(self, codec_context: Any) -> None:
        codec_context.width = self.width
        codec_context.height = self.height
        codec_context.pix_fmt = "yuv420p"
        codec_context.time_base = 1 / self.rate
        codec_context.framerate = self.rate
        codec_context.options = self.settings.x264_options()
        codec_context.thread_count = self.settings.thread_count()

    def _open(self, sink: io.BytesIO) -> tuple[Any, Any]:
        """A started fMP4 container (ftyp+moov written) and its video stream."""
        import av  # heavy import kept out of module import (CLI startup)

        container = av.open(
            sink,
            "w",
            format="mp4",
            options={"movflags": MOVFLAGS, "avoid_negative_ts": "disabled"},
        )
        stream = container.add_stream("libx264", rate=self.rate)
        self._configure(stream.codec_context)
        container.start_encoding()  # opens x264 once for the avcC (SPS/PPS) of the moov
        return container, stream

    def init_segment(self) -> bytes:
        if self._init is None:
            sink = io.BytesIO()
            container, _ = self._open(sink)
            container.close()
            init, rest = split_init(sink.getvalue())
            if rest:
                raise Mp4FormatError(f"unexpected boxes after the init segment: {box_types(rest)}")
            self._init = init
        return self._init

    def media_segment(self, batches: Iterable[np.ndarray], first_frame: int) -> bytes:
        if first_frame < 0:
            raise ValueError(f"first_frame must be >= 0, got {first_frame}")
        expected_init = self.init_segment()
        sink = io.BytesIO()
        container, stream = self._open(sink)  # while the first frames are still generating
        gops: list[Future[list[Any]]] = []
        try:
            pending: list[np.ndarray] = []
            next_pts = first_frame
            for batch in batches:
                self._check_batch(batch)
                pending.extend(batch)
                while len(pending) >= self.settings.gop_frames:
                    gop, pending = (
                        pending[: self.settings.gop_frames],
                        pending[self.settings.gop_frames :],
                    )
                    gops.append(self._pool.submit(self._encode_gop, gop, next_pts))
                    next_pts += len(gop)
            if pending:
                gops.append(self._pool.submit(self._encode_gop, pending, next_pts))
            if not gops:
                raise ValueError("a media segment needs at least one frame")
            for gop_packets in gops:
                for packet in gop_packets.result():
                    packet.stream = stream
                    container.mux(packet)
        finally:
            for future in gops:
                future.cancel()
            container.close()  # writes the single moof+mdat (frag_custom)
        init, segment = split_init(sink.getvalue())
        # every encoder must describe the stream exactly as the init segment the page has
        if init != expected_init:
            raise RuntimeError("the encoder produced a different init segment (settings changed?)")
        if box_types(segment) != list(SEGMENT_BOXES):
            raise Mp4FormatError(f"expected one moof+mdat, got {box_types(segment)}")
        return segment

    def _encode_gop(self, frames: list[np.ndarray], first_pts: int) -> list[Any]:
        """Encoder thread: a fresh x264 encodes ``frames`` (IDR first); returns the packets."""
        import av

        codec_context = av.CodecContext.create("libx264", "w")
        self._configure(codec_context)
        # as in the muxer's own stream: SPS/PPS in the avcC, not repeated in the samples
        codec_context.flags |= av.codec.context.Flags.global_header
        packets = []
        for offset, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = first_pts + offset
            frame.time_base = codec_context.time_base
            packets.extend(codec_context.encode(frame))
        packets.extend(codec_context.encode(None))  # drain
        return packets

    def _check_batch(self, batch: np.ndarray) -> None:
        shape = (self.height, self.width, 3)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != shape:
            raise ValueError(
                f"frames must be uint8 [n, {self.height}, {self.width}, 3], "
                f"got {batch.dtype} {list(batch.shape)}"
            )
