"""Errors of the engines package: each names what is wrong and what to do about it."""

from __future__ import annotations


class GeneratorMismatchError(ValueError):
    """Prompts were fitted on other weights than the generator that would decode them."""

    def __init__(self, expected: str, actual: str, what: str = "chunk") -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{what} was made for generator {expected!r} but this generator is {actual!r}: "
            "prompts only mean something for the exact weights they were fitted on; load the "
            "matching weights (see docs/engines.md) or regenerate the ladder with these"
        )


class WeightsNotFoundError(FileNotFoundError):
    """A weight file the chosen generator needs is not on disk."""

    def __init__(self, path: object, how_to_obtain: str) -> None:
        self.path = path
        super().__init__(f"weights not found: {path} ({how_to_obtain})")


class WeightsFormatError(ValueError):
    """A weight file exists but does not match the architecture it should load into."""
