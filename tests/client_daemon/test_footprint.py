"""The memory one model call takes (measured on the real tiny generator), the budget's frames
per call, and the slice sizer that keeps a page's turn near --slice-ms."""

from __future__ import annotations

import pytest

from client_daemon.footprint import HEADROOM, PROBE_CALLS, Footprint, fit, measure_footprint
from client_daemon.pipeline import SliceSizer
from client_daemon.settings import Budget
from engines.colour import YUV420P

MIB = 2**20


def test_two_sizes_give_the_per_pixel_and_the_per_frame_part() -> None:
    # 1 MiB + 200 B per pixel per frame, measured at 64x64 (one frame) and 128x128 (two)
    samples = [(1, 64 * 64, MIB + 200 * 64 * 64), (2, 128 * 128, 2 * (MIB + 200 * 128 * 128))]
    footprint = fit("cpu", samples, 8 * 2**30)
    assert footprint.bytes_per_pixel == pytest.approx(HEADROOM * 200)  # errs high, not low
    assert footprint.bytes_per_frame == pytest.approx(HEADROOM * MIB)
    exact = 3 * (MIB + 200 * 512 * 512)
    assert footprint.call_bytes(3, 512, 512) == pytest.approx(HEADROOM * exact)
    # one size (or noise that gives no slope): everything counts per pixel, an over-estimate
    alone = fit("cpu", samples[:1], 8 * 2**30)
    assert alone.bytes_per_frame == 0 and alone.bytes_per_pixel > HEADROOM * 200


def test_frames_per_call_follow_the_memory_limit_and_one_frame_over_it_is_refused() -> None:
    footprint = Footprint("cpu", bytes_per_pixel=200, bytes_per_frame=0, available_bytes=8 * 2**30)
    default = Budget()  # a quarter of the free memory on a CPU: 2 GiB here
    assert default.call_limit(footprint) == 2 * 2**30
    assert default.call_frames(footprint, 512, 512) == 40  # 50 MiB a frame
    small = Budget(max_call_bytes=128 * MIB)
    assert small.call_frames(footprint, 512, 512) == 2
    with pytest.raises(ValueError, match=r"one 2048x2048 frame needs about 800 MiB .* over this "):
        small.call_frames(footprint, 2048, 2048)
    gpu = Footprint("cuda:0", bytes_per_pixel=200, bytes_per_frame=0, available_bytes=8 * 2**30)
    assert default.call_limit(gpu) == 4 * 2**30  # half of a card's free memory


def test_the_sizer_keeps_slices_near_their_time_and_under_the_memory_bound() -> None:
    sizer = SliceSizer(16, 0.25, adaptive=True)
    assert sizer.frames == 1  # the first slice of a stream: one frame, whatever its size
    assert sizer.observe(1, 0.01) == 2  # quick: it grows, at most doubling a slice
    assert sizer.observe(2, 0.02) == 4
    assert sizer.observe(4, 0.04) == 8
    assert sizer.observe(8, 0.08) == 16  # capped by the memory bound / the backend's batch
    assert sizer.observe(16, 2.0) == 2  # slow now (a loaded machine): 0.125 s a frame
    assert sizer.observe(2, 4.0) == 1  # a frame over the slice time: one frame, the least
    fixed = SliceSizer(10, 0.25, adaptive=False)  # a backend that compiles per shape
    assert fixed.frames == 10 and fixed.observe(10, 5.0) == 10


def test_the_tiny_generator_is_measured_on_this_machine(tiny_generator) -> None:  # noqa: ANN001
    footprint = measure_footprint(tiny_generator, PROBE_CALLS, YUV420P)
    assert footprint.device == "cpu" and footprint.available_bytes > 0
    # about 245 B per pixel on the 2-core VM; far from 0 and from the GBs per frame of a bug
    assert 20 < footprint.bytes_per_pixel < 5000
    assert footprint.call_bytes(1, 512, 512) < 2 * 2**30
