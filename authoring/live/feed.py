"""Live ingest with PyAV: anything FFmpeg reads as a live input, as square frames at the
channel's frame rate, each stamped with the wall-clock time it was captured.

Sources:
- a folder of images or a video file, *paced* at its own frame rate (a stand-in for a camera:
  frame ``i`` is delivered at ``start + i / fps``, not as fast as it decodes);
- ``rtmp://HOST:PORT/APP/KEY``: we listen on that address and an encoder publishes to it
  (``ffmpeg ... -f flv rtmp://HOST:PORT/APP/KEY``, OBS, ...);
- ``udp://HOST:PORT`` (MPEG-TS over UDP), ``tcp://HOST:PORT?listen=1``, ``http(s)://``, and any
  other URL or file FFmpeg opens. The FFmpeg bundled with PyAV 18.1 has no SRT (no libsrt):
  ``srt://`` is refused with that reason (``SUPPORTED_NOTE``).

An RTMP listener takes one connection at a time: one that is not an RTMP publisher (a port
scan, garbage, a player) is noted and the feed listens again until ``open_timeout_s`` has
passed, so the first connection to the port cannot end the channel. FFmpeg's errors are told
in words (``reason``), not as its ``Invalid argument returned 22`` or ``Immediate exit
requested`` (the latter is FFmpeg's timeout: no publisher, or no data, in time).

Frames are placed on the channel's clock by their timestamps (slot ``floor(t * fps)`` holds
the first frame that falls in it): a source at another or a variable rate is resampled (frames
repeated over holes, surplus frames dropped). Each is scaled (short side to the channel size, swscale) and centre-cropped.
"""

from __future__ import annotations

import errno
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from authoring.source import DEFAULT_FOLDER_FPS, IMAGE_SUFFIXES, crop_and_resize
from common.errors import UserError
from prompts.stream_model import size_problem

log = logging.getLogger(__name__)

PROBE_OPTIONS = {"analyzeduration": "500000", "probesize": "65536"}  # start within ~0.5 s
SLOT_EPSILON = 1e-6  # frames whose timestamp lands a rounding error before a slot belong to it
READ_TIMEOUT_S = 5.0  # s without data from a network source ends the feed
UNSUPPORTED_SCHEMES = {"srt": "the FFmpeg bundled with PyAV has no SRT (libsrt) support"}
SUPPORTED_NOTE = "file, image folder, rtmp:// (listen), udp:// (MPEG-TS), tcp://, http(s)://"
LISTEN_SCHEMES = ("rtmp", "rtmps")  # we listen: an encoder connects to us
# errors of binding the listening socket: listening again cannot help
BIND_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


class FeedError(UserError, ValueError):
    """The feed cannot be opened or read (one line naming the source)."""


@dataclass(frozen=True)
class CapturedFrame:
    """One frame of the channel: its number, its pixels, and when it was captured."""

    index: int  # frame number on the channel's clock (0, 1, 2, ...)
    image: np.ndarray  # uint8 [size, size, 3]
    captured_at: float  # wall-clock seconds (time.time()) the frame became available


@dataclass(frozen=True)
class FeedOptions:
    size: int  # channel frames are size x size (a multiple of 64)
    fps: float | None = None  # channel frame rate (default: the source's; 30 for a folder)
    pace: bool | None = None  # deliver at the frame rate (default: files and folders yes)
    open_timeout_s: float = 60.0  # s to wait for a publisher / the first data
    read_timeout_s: float = READ_TIMEOUT_S  # s without data that end a network feed
    max_frames: int | None = None  # stop after this many frames (tests, trial runs)


class Feed:
    """An open live source; iterate it for ``CapturedFrame``s until the feed ends."""

    def __init__(
        self,
        source: str,
        options: FeedOptions,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        note: Callable[[str], None] = log.warning,
    ) -> None:
        problem = size_problem(options.size, options.size)
        if problem is not None:
            raise FeedError(problem)
        self.source = source
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.note = note
        self._container: Any = None
        folder = Path(source)
        scheme = urlsplit(source).scheme.lower() if "://" in source else ""
        if scheme in UNSUPPORTED_SCHEMES:
            raise FeedError(f"cannot read {source}: {UNSUPPORTED_SCHEMES[scheme]}")
        self.network = bool(scheme) and scheme != "file"
        self.pace = (not self.network) if options.pace is None else options.pace
        if not self.network and folder.is_dir():
            self._paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._paths:
                raise FeedError(f"folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            self.fps = float(options.fps or DEFAULT_FOLDER_FPS)
            self.description = f"{len(self._paths)} images in {source}"
            return
        if not self.network and not folder.is_file():
            raise FeedError(f"source {source} does not exist ({SUPPORTED_NOTE})")
        self._paths = []
        self._open_container(scheme)

    def _open_container(self, scheme: str) -> None:
        import av

        options = dict(PROBE_OPTIONS) if self.network else {}
        listening = scheme in LISTEN_SCHEMES
        if listening:
            options["listen"] = "1"  # we are the server an encoder publishes to
        deadline = time.monotonic() + self.options.open_timeout_s
        while True:
            left = max(0.1, deadline - time.monotonic())
            timeout = (left, self.options.read_timeout_s) if self.network else None
            try:
                self._container = av.open(self.source, options=options, timeout=timeout)
                break
            except av.error.ExitError:  # FFmpeg's timeout interrupted the wait
                waited = f"within {self.options.open_timeout_s:g} s (--open-timeout)"
                if listening:
                    raise FeedError(f"no publisher connected to {self.source} {waited}") from None
                raise FeedError(f"no data from {self.source} {waited}") from None
            except av.error.FFmpegError as error:
                if not listening or error.errno in BIND_ERRORS or time.monotonic() >= deadline:
                    raise FeedError(f"cannot open {self.source}: {reason(error)}") from None
                self.note(
                    f"a connection to {self.source} was not an RTMP publisher: {reason(error)}; "
                    "listening again"
                )
        if not self._container.streams.video:
            self.close()
            raise FeedError(f"{self.source} has no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(self.options.fps or rate or DEFAULT_FOLDER_FPS)
        self.description = (
            f"{stream.codec_context.name} {stream.codec_context.width}x"
            f"{stream.codec_context.height} from {self.source}"
        )

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[CapturedFrame]:
        timed = self._folder_images() if self._paths else self._decoded_images()
        limit = self.options.max_frames
        start = self.clock()
        index = 0
        for seconds, image in timed:
            target = math.floor(seconds * self.fps + SLOT_EPSILON)
            while index <= target:  # repeat over a hole; a frame ahead of its slot is dropped
                if limit is not None and index >= limit:
                    return
                if self.pace:
                    self.sleep(max(0.0, start + index / self.fps - self.clock()))
                yield CapturedFrame(index, image, self.clock())
                index += 1

    def _folder_images(self) -> Iterator[tuple[float, np.ndarray]]:
        for position, path in enumerate(self._paths):
            try:
                with Image.open(path) as image:
                    frame = crop_and_resize(image, self.options.size)
            except OSError as error:
                raise FeedError(f"cannot read frame {path}: {error}") from None
            yield position / self.fps, frame

    def _decoded_images(self) -> Iterator[tuple[float, np.ndarray]]:
        import av

        stream = self._container.streams.video[0]
        first: float | None = None
        decoded = 0
        try:
            for frame in self._container.decode(stream):
                when = frame.time if frame.time is not None else decoded / self.fps
                first = when if first is None else first
                decoded += 1
                yield when - first, scale_and_crop(frame, self.options.size)
        except av.error.EOFError:
            return
        except av.error.ExitError:
            if decoded:
                return  # no data for read_timeout_s (a UDP sender stopped): the feed ended
            raise FeedError(
                f"no data from {self.source} for {self.options.read_timeout_s:g} s"
            ) from None
        except av.error.OSError as error:
            if error.errno == errno.EIO and decoded:
                return  # a network publisher hung up: the feed ended
            raise FeedError(f"reading {self.source} failed: {reason(error)}") from None
        except av.error.FFmpegError as error:
            raise FeedError(f"reading {self.source} failed: {reason(error)}") from None


def reason(error: Exception) -> str:
    """An FFmpeg error in words: its message without PyAV's ``returned 22`` or the repeated URL,
    and for the codes a live input meets what they mean here."""
    import av

    if isinstance(error, av.error.ExitError):  # "Immediate exit requested": our timeout fired
        return "timed out waiting for data"
    code = getattr(error, "errno", None)
    text = str(getattr(error, "strerror", None) or error).strip().rstrip(".")
    if code == errno.EINVAL:
        return (
            f"FFmpeg found the input invalid (error {code}, {text.lower()}): not a stream it "
            "can read, or a publisher that sent something else"
        )
    if code == errno.EIO:
        return "closed before a stream began (input/output error)"
    return text[0].lower() + text[1:] if text else f"FFmpeg error {code}"


def scale_and_crop(frame: Any, size: int) -> np.ndarray:
    """A decoded PyAV frame as ``uint8 [size, size, 3]``: short side scaled to ``size``, centred."""
    width, height = frame.width, frame.height
    scale = size / min(width, height)
    scaled_w, scaled_h = max(size, round(width * scale)), max(size, round(height * scale))
    rgb = frame.reformat(width=scaled_w, height=scaled_h, format="rgb24").to_ndarray()
    top, left = (scaled_h - size) // 2, (scaled_w - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])
