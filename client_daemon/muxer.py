"""The codec layer: frames -> fragmented MP4 (an init segment, then one media segment per GOP).

:class:`SegmentMuxer` is the contract the pipeline uses; :class:`H264Muxer` is the PyAV/libx264
implementation. A chunk is cut into short GOPs that a small pool of long-lived x264 encoders
(opened once per muxer, in the background when it is created) compresses in parallel threads
(PyAV releases the GIL), each GOP starting with a forced IDR frame; with ``tune=zerolatency``
x264 hands out a packet per frame at once, so a GOP's packets are complete when its last frame
is encoded and the encoder goes on to its next GOP without a drain. Each GOP becomes its own
moof+mdat (written by :func:`client_daemon.mp4.fragment`, no FFmpeg container per GOP), handed
out as soon as it and the GOPs before it are done, so a page can show the first GOP of a chunk
while the rest is still being generated. Every segment starts with a keyframe and stands
alone: a level switch or a seek needs nothing special, and a segment's baseMediaDecodeTime
(tfdt) is simply its first frame on the stream's timeline. FFmpeg's mov muxer writes only the
init segment, and every encoder's SPS/PPS must equal the ones in it.

Frames come as packed RGB (``rgb24``, [n, H, W, 3]) or, converted on the generator's device,
as planar YUV 4:2:0 (``yuv420p``, [n, H*3/2, W]: ``engines.colour``), which x264 takes as is.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from client_daemon.mp4 import (
    Mp4FormatError,
    annexb_to_avcc,
    box_types,
    fragment,
    mime_type,
    split_init,
    track_timescale,
)

# the init segment's container: empty_moov: ftyp+moov, samples only in fragments (ours);
# frag_custom: no fragment of its own; default_base_moof: offsets relative to moof, as MSE
# wants (and as mp4.fragment writes them); skip_trailer: no mfra.
MOVFLAGS = "empty_moov+frag_custom+default_base_moof+skip_trailer"
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
            "forced-idr": "1",  # a frame marked I (each GOP's first) becomes an IDR
            # IDRs only where forced (each GOP's first frame, whatever the encoder did before:
            # a short GOP, a seek); BT.601 limited range is what swscale's rgb24 -> yuv420p (and
            # engines.colour) produces, so the page decodes the same matrix
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
    encode_ms: float  # x264 + fragment writing time of this GOP (in its encoder thread)


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
        """Release what the muxer holds (threads, encoders); it encodes nothing afterwards."""

    def __enter__(self) -> SegmentMuxer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class H264Muxer(SegmentMuxer):
    """A pool of long-lived PyAV libx264 encoders (GOPs in parallel), each GOP its own fragment."""

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
        self._extradata = b""  # the init segment's SPS/PPS (Annex B), which every encoder must give
        self._frame_ticks = 0  # one frame's duration on the track's clock
        self._init_lock = threading.Lock()
        self._closed = False
        # idle encoders; None stands for one to open when taken (after a failure)
        self._idle: queue.SimpleQueue[_Encoder | None] = queue.SimpleQueue()
        # one thread per encoder; the threads end with close()
        self._pool = ThreadPoolExecutor(self.encoders, thread_name_prefix="promptus-x264")
        for _ in range(self.encoders):  # opened now, off the first GOP's path
            self._pool.submit(self._open_idle)

    def close(self) -> None:
        """Stop the encoder threads and drop the encoders (a GOP in progress finishes; queued
        ones are dropped)."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._drain_idle()

    def _drain_idle(self) -> None:
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                return

    def _configure(self, codec_context: Any) -> None:
        codec_context.width = self.width
        codec_context.height = self.height
        codec_context.pix_fmt = "yuv420p"
        codec_context.time_base = 1 / self.rate
        codec_context.framerate = self.rate
        codec_context.options = self.settings.x264_options()
        codec_context.thread_count = self.settings.thread_count()

    def init_segment(self) -> bytes:
        with self._init_lock:
            if self._init is None:
                self._init = self._write_init()
            return self._init

    def _write_init(self) -> bytes:
        """ftyp+moov from FFmpeg's mov muxer, the avcC from an x264 opened with our settings."""
        import av  # heavy import kept out of module import (CLI startup)

        sink = io.BytesIO()
        container = av.open(sink, "w", format="mp4", options={"movflags": MOVFLAGS})
        stream = container.add_stream("libx264", rate=self.rate)
        self._configure(stream.codec_context)
        container.start_encoding()  # opens x264 once for the avcC (SPS/PPS) of the moov
        self._extradata = bytes(stream.codec_context.extradata or b"")
        container.close()
        init, rest = split_init(sink.getvalue())
        if rest:
            raise Mp4FormatError(f"unexpected boxes after the init segment: {box_types(rest)}")
        ticks = track_timescale(init) * self.rate.denominator
        if ticks % self.rate.numerator:
            raise Mp4FormatError(
                f"the track's clock has no whole ticks per frame at {self.rate} fps"
            )
        self._frame_ticks = ticks // self.rate.numerator
        return init

    def _open_idle(self) -> None:
        """Pool thread: open an encoder for the idle pool (a failure leaves it to the first GOP)."""
        try:
            encoder: _Encoder | None = _Encoder(self)
        except Exception:  # noqa: BLE001 - retried (and raised) by the GOP that takes the slot
            encoder = None
        if not self._closed:
            self._idle.put(encoder)

    def encode_gops(
        self, batches: Iterable[np.ndarray], first_frame: int, deliver: Callable[[GopSegment], None]
    ) -> None:
        if first_frame < 0:
            raise ValueError(f"first_frame must be >= 0, got {first_frame}")
        self.init_segment()
        in_order = _InOrder(deliver)
        gops: list[Future[GopSegment]] = []
        try:
            pending: list[np.ndarray] = []
            next_frame = first_frame
            for batch in batches:
                self._check_batch(batch)
                for frame in batch:
                    pending.append(frame)
                    if len(pending) == self.gop_frames:
                        gops.append(in_order.track(self._submit(pending, next_frame)))
                        next_frame += len(pending)
                        pending = []
            if pending:
                gops.append(in_order.track(self._submit(pending, next_frame)))
            if not gops:
                raise ValueError("a media segment needs at least one frame")
            for future in gops:
                future.result()  # the first failure raises
            in_order.flush()
        finally:
            in_order.stop()
            for future in gops:
                future.cancel()  # the GOPs not started yet, after a failure

    def _submit(self, frames: list[np.ndarray], first_frame: int) -> Future[GopSegment]:
        return self._pool.submit(self._encode_gop, frames, first_frame, time.perf_counter())

    def _encode_gop(
        self, frames: list[np.ndarray], first_frame: int, ready_at: float
    ) -> GopSegment:
        """Pool thread: the GOP's media segment, from whichever encoder is idle."""
        encoder = self._idle.get()  # one per pool thread: never waits long
        started = time.perf_counter()
        try:
            if encoder is None:
                encoder = _Encoder(self)
            samples = encoder.encode_gop(frames)
        except BaseException:
            encoder = None  # its state is unknown: the slot opens a fresh one when next taken
            raise
        finally:
            if not self._closed:
                self._idle.put(encoder)
        data = fragment(samples, first_frame * self._frame_ticks, self._frame_ticks)
        encode_ms = (time.perf_counter() - started) * 1000
        return GopSegment(data, first_frame, len(frames), ready_at, encode_ms)

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


class _Encoder:
    """One long-lived x264 encoder: GOP after GOP, each led by a forced IDR, a packet per frame."""

    def __init__(self, muxer: H264Muxer) -> None:
        import av
        from av.codec.context import Flags

        muxer.init_segment()  # (also reads the SPS/PPS every encoder must match)
        context = av.CodecContext.create("libx264", "w")
        muxer._configure(context)
        context.flags |= Flags.global_header  # SPS/PPS once, in the init segment's avcC
        context.open()
        # every encoder must describe the stream exactly as the init segment the page has
        if bytes(context.extradata or b"") != muxer._extradata:
            raise RuntimeError(
                "the encoder's SPS/PPS differ from the init segment's (settings changed?)"
            )
        self._context = context
        self._pts = 0  # the encoder's own clock: contiguous whatever the stream's frames are

    def encode_gop(self, frames: list[np.ndarray]) -> list[bytes]:
        """The GOP's samples (AVCC access units), the first an IDR."""
        import av
        from av.video.frame import PictureType

        context = self._context
        packets = []
        pixel_format = "rgb24" if frames[0].ndim == 3 else "yuv420p"  # yuv420p goes in untouched
        for offset, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format=pixel_format)
            frame.pts = self._pts
            frame.time_base = context.time_base
            self._pts += 1
            if offset == 0:
                frame.pict_type = PictureType.I  # forced-idr: this GOP starts with an IDR
            packets.extend(context.encode(frame))
        # zerolatency: no lookahead, no B-frames, sliced threads, so nothing stays in the encoder
        if len(packets) != len(frames) or not packets[0].is_keyframe:
            raise RuntimeError(
                f"x264 gave {len(packets)} packets for {len(frames)} frames "
                f"(keyframe first: {bool(packets) and packets[0].is_keyframe})"
            )
        return [annexb_to_avcc(bytes(packet)) for packet in packets]
