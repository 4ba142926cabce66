"""Device -> host frame copies into pinned memory on a side stream, overlapping later batches."""

from __future__ import annotations

import numpy as np
import torch

from engines.backends.frame_sink import FrameSink


class PinnedFrameSink(FrameSink):
    """A chunk's frames in one pinned host buffer; each batch's copy runs on a copy stream.

    ``add`` returns at once: the copy waits for the batch on the compute stream and then runs
    while the compute stream goes on with the next batch. ``result`` waits for the copies.
    The buffer comes from PyTorch's caching host allocator, so a chunk of the same size
    reuses the pinned block of an earlier chunk once that chunk's array is released.
    """

    def __init__(self, total: int, frame_shape: tuple[int, ...], device: torch.device) -> None:
        self._device = device
        self._copy_stream = torch.cuda.Stream(device)
        self._copied: list[torch.cuda.Event] = []  # one per batch, recorded after its copy
        super().__init__(total, frame_shape)

    def _allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        self._host = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        return self._host.numpy()  # shares the pinned memory

    def add(self, frames: torch.Tensor) -> None:
        count = frames.shape[0]
        self._copy_stream.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(self._copy_stream):
            self._host[self._offset : self._offset + count].copy_(frames, non_blocking=True)
            self._copied.append(torch.cuda.Event())
            self._copied[-1].record(self._copy_stream)
        # The batch's memory must not be reused by the compute stream before the copy read it.
        frames.record_stream(self._copy_stream)
        self._record(count)

    def _landed(self, index: int, wait: bool) -> bool:
        if wait:
            self._copied[index].synchronize()
            return True
        return self._copied[index].query()

    def result(self) -> np.ndarray:
        self._copy_stream.synchronize()
        return super().result()
