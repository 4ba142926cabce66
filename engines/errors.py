"""Errors of the engines package: each names what is wrong and what to do about it."""

from __future__ import annotations

from common.errors import UserError


class WeightsNotFoundError(UserError, FileNotFoundError):
    """A weight file the chosen generator needs is not on disk."""

    def __init__(self, path: object, how_to_obtain: str) -> None:
        self.path = path
        super().__init__(f"weights not found: {path} ({how_to_obtain})")


class WeightsFormatError(UserError, ValueError):
    """A weight file exists but does not match the architecture it should load into."""
