"""Atomic file writes: a reader never sees a half-written chunk or manifest.

Files are written 0644 (readable by a separate web server user, as published media must
be), through a temporary name in the same directory and a rename. A whole new directory
(an imported ladder) is built beside its target and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.errors import UserError

FILE_MODE = 0o644
DIRECTORY_MODE = 0o755


class OutputExistsError(UserError, FileExistsError):
    """A writer would overwrite something it was not asked to replace, or write through a link."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600: nobody but us could serve the file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], document: Any) -> None:
    """Write a JSON document atomically (UTF-8, indented, trailing newline)."""
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def check_new_output(target: Path, *, replace: bool) -> None:
    """Refuse a ``target`` that is a symlink, not a directory, or a non-empty directory (the
    last unless ``replace``): what ``atomic_directory`` would otherwise clobber."""
    if target.is_symlink():
        raise OutputExistsError(f"{target} is a symlink; refusing to write through it")
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputExistsError(f"{target} exists and is not a directory")
    if any(target.iterdir()) and not replace:
        raise OutputExistsError(f"{target} is not empty; pass --force to replace it")


@contextmanager
def atomic_directory(target: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """A fresh directory beside ``target`` to fill; when the block ends without error it
    becomes ``target`` (an existing one, when ``replace``, is renamed away and removed), else
    it is removed. Nothing inside is a pre-existing link, so nothing is written through one."""
    target = Path(target)
    check_new_output(target, replace=replace)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield building
        os.chmod(building, DIRECTORY_MODE)
        check_new_output(target, replace=replace)  # again: it may have appeared meanwhile
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(building, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
