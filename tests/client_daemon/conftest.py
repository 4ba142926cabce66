"""Fixtures of the daemon tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from engines.generator import Generator


@pytest.fixture(scope="session")
def tiny_generator() -> Generator:
    from engines import load_generator  # torch and diffusers load only for tests that need them

    return load_generator("tiny", device="cpu")
