"""The codec layer: frames -> fragmented MP4 (an init segment, then one media segment per GOP).

:class:`SegmentMuxer` is the contract the pipeline uses; :class:`H264Muxer` is the PyAV/libx264
implementation. A chunk is cut into short GOPs that fresh x264 encoders compress in parallel
threads (PyAV releases the GIL), each GOP starting with an IDR frame; each GOP becomes its own
moof+mdat, handed out as soon as it and the GOPs before it are done, so a page can show the
first GOP of a chunk while the rest is still being generated. Every segment starts with a
keyframe and stands alone: a level switch or a seek needs nothing special, and a segment's
baseMediaDecodeTime (tfdt) is simply its first frame on the stream's timeline
(``frag_discont`` with ``avoid_negative_ts=disabled`` keeps FFmpeg from shifting it to zero).

Frames come as packed RGB (``rgb24``, [n, H, W, 3]) or, converted on the generator's device,
as planar YUV 4:2:0 (``yuv420p``, [n, H*3/2, W]: ``engines.colour``), which x264 takes as is.
"""

from __future__ import annotations

import io
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from client_daemon.mp4 import SEGMENT_BOXES, Mp4FormatError, box_types, mime_type, split_init

# empty_moov: ftyp+moov first, samples only in fragments; frag_custom: a fragment only at
# close (one moof+mdat per GOP's container); default_base_moof: offsets relative to moof, as
# MSE wants; frag_discont: tfdt = first frame's time; skip_trailer: no mfra.
MOVFLAGS = "empty_moov+frag_custom+default_base_moof+frag_discont+skip_trailer"
RATE_DENOMINATOR_LIMIT = 1001  # fps like 29.97 become 30000/1001
CORES_PER_ENCODER = 4  # default: one parallel GOP encoder per 4 CPU cores


@dataclass(frozen=True)
class EncoderSettings:
    """x264 settings of the local link: fast and near-lossless (bitrate is free on loopback)."""

    preset: str = "ultrafast"  # x264 preset; ultrafast = Constrained Baseline, no CABAC
    crf: int = 10  # constant rate factor; no PSNR lost on generated frames (docs/daemon.md)
    gop_frames: int = (
        10  # frames per GOP = per media segment: one generation group of the usual interval
    )
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
            # what swscale's rgb24 -> yuv420p (and engines.colour) produces, so the page decodes
            # the same matrix
            "x264-params": "keyint=infinite:scenecut=0:"
            "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m",
        }


NEAR_LOSSLESS = EncoderSettings()


@dataclass(frozen=True)
class GopSegment:
    """One GOP of a chunk as a media segment (moof+mdat, starting with its IDR frame)."""

    data: bytes
    first_frame: int  # stream frame index of its first frame
    frames: int
    ready_at: float  # time.perf_counter() when its frames were all in (generation done for it)
    encode_ms: float  # x264 + muxing time of this GOP (in its encoder thread)


class SegmentMuxer(ABC):
    """Frames of one stream -> fMP4 init segment + one moof+mdat media segment per GOP."""

    gop_frames: int
    encoders: int  # GOPs encoded side by side

    @abstractmethod
    def init_segment(self) -> bytes:
        """The stream's init segment (ftyp+moov), the same bytes on every call."""

    @abstractmethod
    def encode_gops(
        self, batches: Iterable[np.ndarray], first_frame: int, deliver: Callable[[GopSegment], None]
    ) -> None:
        """Encode the frames of ``batches``; ``deliver`` gets one media segment per GOP, in order, at once.

        ``batches`` yields uint8 frames (``rgb24`` [n, H, W, 3] or ``yuv420p`` [n, H*3/2, W]) as
        generation produces them, so encoding overlaps generation; ``first_frame`` is the
        stream frame index of the first frame and sets the timestamps. ``deliver`` is called
        from encoder threads as soon as a GOP and every GOP before it are done; this returns
        once all are delivered, or raises the first failure (later GOPs are not delivered).
        """

    def gop_count(self, frames: int) -> int:
        """How many GOP segments ``frames`` frames make."""
        return -(-frames // self.gop_frames)

    def media_segment(self, batches: Iterable[np.ndarray], first_frame: int) -> bytes:
        """All frames as one media segment (the GOPs' moof+mdat pairs back to back)."""
        gops: list[GopSegment] = []
        self.encode_gops(batches, first_frame, gops.append)
        return b"".join(gop.data for gop in gops)

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
    """PyAV libx264 encoders (parallel, one per GOP), each GOP muxed into its own fragment."""

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
        self.gop_frames = settings.gop_frames
        self.encoders = settings.encoder_count()
        self._init: bytes | None = None
        # GOP encoders; their threads end with close()
        self._pool = ThreadPoolExecutor(self.encoders, thread_name_prefix="promptus-x264")

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

    def encode_gops(
        self, batches: Iterable[np.ndarray], first_frame: int, deliver: Callable[[GopSegment], None]
    ) -> None:
        if first_frame < 0:
            raise ValueError(f"first_frame must be >= 0, got {first_frame}")
        self.init_segment()
        in_order = _InOrder(deliver)
        gops: list[Future[GopSegment]] = []
        container: _Container | None = None
        try:
            pending: list[np.ndarray] = []
            next_frame = first_frame
            for batch in batches:
                self._check_batch(batch)
                for frame in batch:
                    if container is None:
                        # a GOP's container (and its x264 open) while its frames are generated
                        container = _Container(self)
                    pending.append(frame)
                    if len(pending) == self.gop_frames:
                        gops.append(in_order.track(self._submit(container, pending, next_frame)))
                        next_frame += len(pending)
                        pending, container = [], None
            if pending:
                assert container is not None
                gops.append(in_order.track(self._submit(container, pending, next_frame)))
                container = None
            if not gops:
                raise ValueError("a media segment needs at least one frame")
            for future in gops:
                future.result()  # the first failure raises
            in_order.flush()
        finally:
            in_order.stop()
            for future in gops:
                future.cancel()  # the GOPs not started yet, after a failure
            if container is not None:
                container.discard()

    def _submit(
        self, container: _Container, frames: list[np.ndarray], first_frame: int
    ) -> Future[GopSegment]:
        return self._pool.submit(container.encode_gop, frames, first_frame, time.perf_counter())

    def _check_batch(self, batch: np.ndarray) -> None:
        rgb, planar = (self.height, self.width, 3), (self.height * 3 // 2, self.width)
        if (
            batch.dtype != np.uint8
            or batch.shape[1:] not in (rgb, planar)
            or batch.ndim not in (3, 4)
        ):
            raise ValueError(
                f"frames must be uint8 [n, {self.height}, {self.width}, 3] (rgb24) or "
                f"[n, {self.height * 3 // 2}, {self.width}] (yuv420p), got {batch.dtype} {list(batch.shape)}"
            )


class _InOrder:
    """Hands finished GOPs to ``deliver`` in GOP order, from whichever encoder thread finishes one."""

    def __init__(self, deliver: Callable[[GopSegment], None]) -> None:
        self._deliver = deliver
        self._futures: list[Future[GopSegment]] = []
        self._next = 0  # index of the next GOP to deliver
        self._stopped = False
        self._lock = threading.Lock()

    def track(self, future: Future[GopSegment]) -> Future[GopSegment]:
        with self._lock:
            self._futures.append(future)
        future.add_done_callback(lambda _: self.flush())
        return future

    def flush(self) -> None:
        """Deliver every finished GOP whose predecessors are delivered (stops at a failure)."""
        with self._lock:
            while not self._stopped and self._next < len(self._futures):
                future = self._futures[self._next]
                if not future.done() or future.cancelled() or future.exception() is not None:
                    return
                self._next += 1
                self._deliver(future.result())

    def stop(self) -> None:
        """Deliver nothing more (the chunk failed or is complete)."""
        with self._lock:
            self._stopped = True


class _Container:
    """One GOP's fMP4 container: a fresh x264 encodes its frames (IDR first), FFmpeg muxes one moof+mdat."""

    def __init__(self, muxer: H264Muxer) -> None:
        self._muxer = muxer
        self._sink = io.BytesIO()
        self._container, self._stream = muxer._open(self._sink)

    def encode_gop(self, frames: list[np.ndarray], first_frame: int, ready_at: float) -> GopSegment:
        """Encoder thread: the GOP's media segment."""
        import av

        started = time.perf_counter()
        muxer = self._muxer
        # the stream's own x264, opened by start_encoding (SPS/PPS in the avcC, global header)
        stream = self._stream
        time_base = stream.codec_context.time_base
        packets = []
        pixel_format = (
            "rgb24" if frames[0].ndim == 3 else "yuv420p"
        )  # yuv420p goes to x264 untouched
        for offset, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format=pixel_format)
            frame.pts = first_frame + offset
            frame.time_base = time_base
            packets.extend(stream.encode(frame))
        packets.extend(stream.encode(None))  # drain
        self._container.mux(packets)
        self._container.close()  # writes the GOP's moof+mdat (frag_custom)
        init, segment = split_init(self._sink.getvalue())
        # every encoder must describe the stream exactly as the init segment the page has
        if init != muxer.init_segment():
            raise RuntimeError("the encoder produced a different init segment (settings changed?)")
        if box_types(segment) != list(SEGMENT_BOXES):
            raise Mp4FormatError(f"expected one moof+mdat, got {box_types(segment)}")
        encode_ms = (time.perf_counter() - started) * 1000
        return GopSegment(segment, first_frame, len(frames), ready_at, encode_ms)

    def discard(self) -> None:
        """Close a container that got no frames (the chunk failed or was abandoned)."""
        self._container.close()
