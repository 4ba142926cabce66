"""Writing generated frames to an H.264 MP4 file with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

DEFAULT_CRF = 18  # x264 constant rate factor: visually near-lossless
GOP_SECONDS = 2.0  # one keyframe every 2 s of video


class Mp4Writer:
    """Append ``uint8 [T, H, W, 3]`` frame batches; ``close`` flushes the encoder."""

    def __init__(
        self, path: str | Path, *, width: int, height: int, fps: float, crf: int = DEFAULT_CRF
    ) -> None:
        self._container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.options = {"crf": str(crf), "g": str(max(1, round(GOP_SECONDS * fps)))}
        self.frames_written = 0

    def write(self, frames: np.ndarray) -> None:
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = self.frames_written
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
