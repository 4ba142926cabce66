"""Full mode: real server, daemon and Chromium behind a shaped namespace link; agrees with fast mode."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from emulation.fast import SessionResult, SimConfig, run_fast
from emulation.full import (
    FullConfig,
    FullModeUnavailable,
    check_full_mode,
    full_session,
    result_from_samples,
)
from emulation.ladder import load_ladder, synthetic_ladder
from emulation.netns import our_namespaces
from emulation.traces import Trace
from tests.emulation.ladder_factory import build_ladder


def test_page_samples_become_a_session() -> None:
    ladder = synthetic_ladder()
    samples = [
        {"t": 0.0, "chunk": None, "levelId": None, "stallS": 0.0, "startupS": None},
        {
            "t": 0.5,
            "chunk": 0,
            "levelId": 0,
            "stallS": 0.0,
            "startupS": 0.4,
            "bufferS": 1.5,
            "throughputKbps": 800,
        },
        {"t": 1.0, "chunk": 0, "levelId": 0, "stallS": 0.0, "startupS": 0.4, "bufferS": 1.0},
        {"t": 2.5, "chunk": 1, "levelId": 2, "stallS": 0.0, "startupS": 0.4, "bufferS": 0.2},
        {"t": 3.0, "chunk": 1, "levelId": 2, "stallS": 0.3, "startupS": 0.4, "bufferS": 0.0},
        {"t": 3.5, "chunk": 1, "levelId": 2, "stallS": 0.8, "startupS": 0.4, "bufferS": 0.0},
        {"t": 4.5, "chunk": 2, "levelId": 1, "stallS": 0.8, "startupS": 0.4, "bufferS": 1.9},
    ]
    result = result_from_samples(
        samples, ladder, Trace.constant(1.0, 10.0), "bba", seed=0, offset_s=0.0
    )
    assert result.startup_s == 0.4 and result.end_s == 4.5
    assert result.chunks["level"] == [0, 2, 1] and result.chunks["chunk"] == [0, 1, 2]
    assert result.chunks["quality"] == [
        float(ladder.quality_db[lv, j]) for lv, j in ((0, 0), (2, 1), (1, 2))
    ]
    assert result.chunks["deliveryMbps"][0] == 0.8
    assert result.stalls == [pytest.approx((2.7, 3.5))]  # merged across consecutive samples


def test_full_mode_needs_a_real_ladder() -> None:
    with pytest.raises(FullModeUnavailable, match="needs a real ladder"):
        check_full_mode(None)


def full_mode_ready() -> bool:
    try:
        check_full_mode(Path("."))
    except FullModeUnavailable:
        return False
    return True


@pytest.fixture(scope="module")
def tiny_ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engines import load_generator

    generator_id = load_generator("tiny", device="cpu").generator_id
    return build_ladder(tmp_path_factory.mktemp("ladders") / "tiny", generator_id, chunks=20)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(
    not full_mode_ready(), reason="needs root, network namespaces, chromium and playwright"
)
def test_fast_and_full_agree_in_direction_on_constant_links(
    tiny_ladder: Path, tmp_path: Path
) -> None:
    """The top level (88 KB chunks) on 0.04 vs 8 Mbit/s: later start and less video on the slow link.

    Held fixed so that the daemon's speed (a few frames/s for the tiny generator on a busy CPU)
    cannot make every rule fall back to the lowest level; both sessions run at once.
    """
    ladder = load_ladder(tiny_ladder)
    namespaces_before = set(our_namespaces())
    links = (Trace.constant(0.04, 120.0, name="slow"), Trace.constant(8.0, 120.0, name="fast"))
    config = FullConfig(session_s=25.0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(
                full_session,
                tiny_ladder,
                ladder,
                trace,
                "fixed",
                config,
                seed=0,
                workdir=tmp_path / trace.name,
                fixed_level=2,
            )
            for trace in links
        ]
        (slow_full, slow_page), (fast_full, fast_page) = [f.result() for f in futures]
    assert (
        fast_full.startup_s is not None and fast_full.chunks["level"][0] == 2
    )  # video played, top level
    daemon_fps = [s["daemonFps"] for s in fast_page["samples"] if s.get("daemonFps")]
    assert daemon_fps, "the page never reported the daemon's speed"
    sim = run_fast(
        ladder,
        list(links),
        ["fixed"],
        SimConfig(session_s=25.0, daemon_fps=float(np.median(daemon_fps))),
        abr_options={"fixed": {"level": 2}},
    )

    def startup(result: SessionResult) -> float:
        return result.startup_s if result.startup_s is not None else math.inf

    assert startup(slow_full) > startup(fast_full)
    assert startup(sim[0]) > startup(sim[1])
    assert len(slow_full.chunks["level"]) <= len(fast_full.chunks["level"])
    assert set(our_namespaces()) <= namespaces_before  # every session tore its namespaces down
