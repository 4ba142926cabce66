"""Shared fixtures: the ../shared test material and the rule that CI may not skip it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROMPTUS_SHARED", REPO_ROOT.parent / "shared"))
REQUIRE_SHARED = os.environ.get("PROMPTUS_REQUIRE_SHARED") == "1"


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared; skips the test (fails under CI) when it is absent."""
    path = SHARED / relative
    if not path.exists():
        reason = f"../shared material missing: {path} (a user's clone has no ../shared)"
        if REQUIRE_SHARED:
            pytest.fail(reason + "; PROMPTUS_REQUIRE_SHARED=1 makes this a failure", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture
def legacy_prompts_dir() -> Path:
    return shared_path("media/sky-legacy-prompts/rank8_interval10")


@pytest.fixture
def sky_frames_dir() -> Path:
    return shared_path("media/sky")


@pytest.fixture
def taesd_dir() -> Path:
    return shared_path("models/taesd")


@pytest.fixture
def traces_dir() -> Path:
    return shared_path("traces")


@pytest.fixture(scope="session")
def tiny_generator():  # type: ignore[no-untyped-def]
    """The tiny generator on the CPU (torch and diffusers load only for tests that ask for it)."""
    from engines import load_generator

    return load_generator("tiny", device="cpu")
