"""The trace catalogue: which folder holds which format and unit, and which files are downlinks.

A trace directory is either one of the known source folders (``../shared/traces/<source>``)
or a root holding several of them. Unknown folders are sniffed file by file and read as Mbit/s.
Each entry carries flags so runs can be filtered and stay reproducible (sorted by source, name).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from emulation.traces import (
    PairUnit,
    Trace,
    TraceFormat,
    TraceFormatError,
    read_trace,
    sniff_format,
)


class Direction(enum.StrEnum):
    DOWN = "down"
    UP = "up"


@dataclass(frozen=True)
class Source:
    """How to read one known source folder."""

    folder: str
    fmt: TraceFormat
    unit: PairUnit = PairUnit.MBITS_PER_S


SOURCES: dict[str, Source] = {
    s.folder: s
    for s in (
        Source("mahimahi-cellular", TraceFormat.MAHIMAHI),
        Source("norway-hsdpa", TraceFormat.PAIRS),
        Source("fcc-broadband", TraceFormat.PAIRS),
        Source("oboe", TraceFormat.PAIRS),
        Source("puffer", TraceFormat.PAIRS, PairUnit.MBYTES_PER_S),  # the README's unit caveat
        Source("ucc-5g", TraceFormat.UCC_5G),
    )
}

SKIPPED_NAMES = {"README.md", "README", "LICENSE"}


@dataclass(frozen=True)
class CatalogEntry:
    """One trace file with its reading rule and flags."""

    path: Path
    source: str
    fmt: TraceFormat
    unit: PairUnit
    direction: Direction

    @property
    def name(self) -> str:
        return self.path.name

    def load(self) -> Trace:
        """Read the file into the in-memory form."""
        return read_trace(self.path, fmt=self.fmt, unit=self.unit, source=self.source)


def _direction(path: Path) -> Direction:
    # mahimahi recordings come as <name>.down / <name>.up; everything else is a downlink log.
    return Direction.UP if path.suffix == ".up" else Direction.DOWN


def _folder_entries(folder: Path, puffer_unit: PairUnit | None) -> list[CatalogEntry]:
    known = SOURCES.get(folder.name)
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name not in SKIPPED_NAMES):
        if known is not None:
            fmt, unit = known.fmt, known.unit
            if known.folder == "puffer" and puffer_unit is not None:
                unit = puffer_unit
        else:
            fmt, unit = sniff_format(path), PairUnit.MBITS_PER_S
        entries.append(CatalogEntry(path, folder.name, fmt, unit, _direction(path)))
    return entries


def build_catalog(
    root: Path, *, puffer_unit: PairUnit | None = None, include_uplinks: bool = False
) -> list[CatalogEntry]:
    """Every trace under ``root`` (a source folder or a folder of source folders)."""
    root = Path(root)
    if root.is_file():
        return [
            CatalogEntry(
                root, root.parent.name, sniff_format(root), PairUnit.MBITS_PER_S, _direction(root)
            )
        ]
    if not root.is_dir():
        raise TraceFormatError(f"{root}: no such trace file or directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    entries = _folder_entries(root, puffer_unit) if not folders else []
    for folder in folders:
        entries.extend(_folder_entries(folder, puffer_unit))
    if not include_uplinks:
        entries = [e for e in entries if e.direction is Direction.DOWN]
    if not entries:
        raise TraceFormatError(f"{root}: no trace files found")
    return entries
