"""Where a chunk's frames gather on the host, batch by batch, for the encoder."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class FrameSink:
    """Collects uint8 frame batches [B, *frame_shape] into one host array [T, *frame_shape] (the CPU form).

    ``ready`` hands the batches over as their copies land, so a consumer (the encoder) can
    start on the first group of a chunk while later groups are still being generated.
    """

    def __init__(self, total: int, frame_shape: tuple[int, ...]) -> None:
        self._frames = self._allocate((total, *frame_shape))
        self._offset = 0
        self._handed = 0  # batches given out by `ready`
        self._batches: list[tuple[int, int]] = []  # (start, count) of every batch added

    def _allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.empty(shape, dtype=np.uint8)

    def add(self, frames: torch.Tensor) -> None:
        """Append a batch (any device; this form copies synchronously)."""
        count = frames.shape[0]
        self._frames[self._offset : self._offset + count] = frames.cpu().numpy()
        self._record(count)

    def _record(self, count: int) -> None:
        self._batches.append((self._offset, count))
        self._offset += count

    def _landed(self, index: int, wait: bool) -> bool:
        """Whether batch ``index`` is on the host (waiting for it if ``wait``)."""
        return True

    def ready(self, wait: bool = False, queued: int = 0) -> Iterator[np.ndarray]:
        """The batches not handed out yet whose copies have landed, in order.

        With ``wait``, waits for every batch but the newest ``queued`` (those may still be
        running on the device: a stream hands batch ``k`` over while batch ``k + 1`` computes).
        """
        while self._handed < len(self._batches) and self._landed(
            self._handed, wait and self._handed < len(self._batches) - queued
        ):
            start, count = self._batches[self._handed]
            self._handed += 1
            yield self._frames[start : start + count]

    def result(self) -> np.ndarray:
        """All frames added, once every copy has landed."""
        if self._offset != len(self._frames):
            raise RuntimeError(f"frame sink got {self._offset} of {len(self._frames)} frames")
        return self._frames
