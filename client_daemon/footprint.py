"""What one model call costs on the daemon's device, measured once at start.

The daemon's budget bounds the memory one model call may allocate and the time it takes, so
it needs to know what a call of ``frames`` frames of ``width x height`` costs with *this*
generator, backend and device. It runs a few small calls (the generation groups it was warmed
up on, for a backend that compiles per shape) and records the peak memory each allocated
above the idle level: on CUDA PyTorch's allocator peak, on the CPU the process's resident
high-water mark (reset before each call through ``/proc/self/clear_refs``). Memory is fitted
as ``frames x (bytes_per_frame + bytes_per_pixel x width x height)``. (Time is not estimated
from these small calls: it is measured on each stream's own slices as they run,
``client_daemon.pipeline.SliceSizer``.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# (width, height, frames) of the calls measured on a backend that runs any shape as it comes:
# two sizes give the per-pixel and the per-frame part of a call's memory
PROBE_CALLS: tuple[tuple[int, int, int], ...] = ((64, 64, 1), (128, 128, 1))
# Larger frames take a little more per pixel than the small calls measured (the tiny generator
# on a CPU: 180 B per pixel fitted at 64x64 and 128x128, 202-212 at 1024x1024): the fit is
# scaled up by this, so it errs high, not low
HEADROOM = 1.25
CLEAR_REFS = Path("/proc/self/clear_refs")  # writing "5" resets the resident high-water mark
STATUS = Path("/proc/self/status")
MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")


class CannotMeasure(RuntimeError):
    """This platform does not tell a call's peak memory (no /proc/self/clear_refs)."""


@dataclass(frozen=True)
class Footprint:
    """A model call's cost on one device, per frame pixel and per frame."""

    device: str
    bytes_per_pixel: float  # peak memory above idle, per pixel of each frame of the call
    bytes_per_frame: float  # and per frame whatever its size (contexts, attention keys)
    available_bytes: int  # memory free on the device when measured

    def call_bytes(self, frames: int, width: int, height: int) -> float:
        """Peak memory a call of ``frames`` frames of ``width x height`` allocates."""
        return frames * (self.bytes_per_frame + self.bytes_per_pixel * width * height)

    def describe(self) -> str:
        return (
            f"{self.bytes_per_pixel:.0f} B per pixel + {self.bytes_per_frame / 2**20:.2f} MiB per "
            f"frame on {self.device}"
        )


def fit(device: str, samples: Sequence[tuple[int, int, float]], free: int) -> Footprint:
    """The footprint from measured calls (frames, pixels per frame, peak bytes)."""
    per_frame = [(pixels, peak / frames) for frames, pixels, peak in samples]
    (small_px, small_b), (large_px, large_b) = min(per_frame), max(per_frame)
    slope = (large_b - small_b) / (large_px - small_px) if large_px > small_px else 0.0
    if slope <= 0:  # one size, or noise: everything counts as per pixel (over, never under)
        slope, intercept = large_b / large_px, 0.0
    else:
        intercept = max(0.0, large_b - slope * large_px)
    return Footprint(device, HEADROOM * slope, HEADROOM * intercept, free)


def measure_footprint(
    generator: Any, calls: Sequence[tuple[int, int, int]], frame_format: str
) -> Footprint:
    """Run each call (width, height, frames) twice (the first warms caches and compiled shapes)
    and fit the second runs' peaks; CannotMeasure where the platform cannot tell."""
    import torch

    device = torch.device(generator.device)
    samples = []
    for width, height, frames in calls:
        frames = min(frames, generator.backend.max_batch)
        generator.warm_up(width, height, frames, frame_format)
        generator.release_memory()
        with _PeakMemory(device) as peak:
            generator.warm_up(width, height, frames, frame_format)
        samples.append((frames, width * height, float(peak.bytes)))
    generator.release_memory()
    return fit(str(device), samples, available_bytes(device))


class _PeakMemory:
    """Peak bytes allocated above the level at entry, while the block ran."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.bytes = 0

    def __enter__(self) -> _PeakMemory:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = _status_kib("VmRSS") * 1024
        try:
            CLEAR_REFS.write_text("5")
        except OSError as error:
            raise CannotMeasure(f"cannot reset the resident high-water mark: {error}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self.bytes = _status_kib("VmHWM") * 1024 - self._base


def _status_kib(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise CannotMeasure(f"/proc/self/status has no {field}")


def available_bytes(device: Any) -> int:
    """Memory free for the daemon's calls: on CUDA the card's free memory; on the CPU the
    system's available memory, or what its cgroup still allows when that is less."""
    import torch

    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        fields = dict(line.split(":", 1) for line in MEMINFO.read_text().splitlines())
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min(available, _cgroup_allowance())


def _cgroup_allowance() -> int:
    """What the process's cgroup (v2) lets it still allocate; a huge number when unlimited."""
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        used = int((CGROUP / "memory.current").read_text())
    except (OSError, ValueError):
        return 2**63
    return 2**63 if limit == "max" else max(0, int(limit) - used)
