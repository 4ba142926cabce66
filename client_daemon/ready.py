"""The ready file: how a listening daemon tells programs where it is and which generator it runs.

``promptus demo``, the tests and the emulator read it instead of the daemon's printed lines: a
JSON object written atomically once the socket is bound, removed when the daemon stops.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from common.atomic import atomic_write_json
from common.errors import UserError


@dataclass(frozen=True)
class DaemonReady:
    """What a listening daemon announces."""

    url: str  # ws://host:port
    port: int
    generator_id: str
    generator_name: str
    device: str
    allowed_origins: tuple[str, ...]
    pid: int


class ReadyFileError(UserError):
    """A ready file is missing or not what a daemon writes."""


def write_ready_file(path: Path, ready: DaemonReady) -> None:
    atomic_write_json(path, asdict(ready))


def read_ready_file(path: Path) -> DaemonReady:
    """The announcement in ``path``; ReadyFileError when absent or malformed."""
    try:
        fields = json.loads(Path(path).read_text(encoding="utf-8"))
        fields["allowed_origins"] = tuple(fields["allowed_origins"])
        return DaemonReady(**fields)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReadyFileError(f"no daemon announcement in {path}: {error}") from None
