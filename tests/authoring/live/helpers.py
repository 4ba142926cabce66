"""Small helpers of the live tests."""

from __future__ import annotations

import shutil

import pytest

from common.ports import free_port
from tests.conftest import REQUIRE_SHARED

__all__ = ["free_port", "ffmpeg"]


def ffmpeg() -> str:
    """Debian's ``ffmpeg`` (the RTMP publisher); skips without it, fails under CI, which
    installs it (scripts/install-system-deps.sh)."""
    path = shutil.which("ffmpeg")
    if path is None:
        reason = "Debian's ffmpeg is not installed (apt-get install ffmpeg)"
        if REQUIRE_SHARED:
            pytest.fail(reason + "; CI must run the RTMP ingest tests", pytrace=False)
        pytest.skip(reason)
    return path
