"""The media folder's files read as untrusted input.

A ladder file is read only when it resolves (symlinks followed) to a *regular* file inside
the media folder, and never more than its expected size plus one byte. The open is
non-blocking and refuses a final symlink (``O_NONBLOCK | O_NOFOLLOW`` on the resolved path),
and the kind of file is checked on the open descriptor, so a FIFO, a device such as
``/dev/zero`` or a link to a file outside the folder is refused at once instead of blocking
the reader or being served.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from common.errors import UserError

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_BLOCK = 1024 * 1024


class MediaFileError(UserError, OSError):
    """A ladder file is missing, not a regular file inside the media folder, or of the wrong size."""


def resolve_inside(path: Path, root: Path) -> Path:
    """``path`` with every symlink resolved; MediaFileError unless it lies inside ``root``
    (itself resolved)."""
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(root):
        raise MediaFileError(f"{path.name} resolves outside the media folder")
    return resolved


def read_media_file(path: Path, root: Path, *, limit: int, expected: int | None = None) -> bytes:
    """The bytes of ``path``: a regular file inside ``root`` of at most ``limit`` bytes (of
    exactly ``expected`` bytes when given); reads at most one byte more than that."""
    resolved = resolve_inside(path, root)
    try:
        fd = os.open(resolved, _OPEN_FLAGS)
    except OSError as error:
        raise MediaFileError(f"{path.name}: cannot open: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MediaFileError(f"{path.name} is not a regular file")
        bound = limit if expected is None else min(expected, limit)
        if info.st_size > bound or (expected is not None and info.st_size != expected):
            wanted = f"{expected} bytes" if expected is not None else f"at most {limit} bytes"
            raise MediaFileError(f"{path.name} has {info.st_size} bytes, expected {wanted}")
        data = _read_at_most(fd, bound + 1)
    finally:
        os.close(fd)
    if len(data) > bound or (expected is not None and len(data) != expected):
        raise MediaFileError(f"{path.name} changed size while being read ({len(data)} bytes)")
    return data


def _read_at_most(fd: int, count: int) -> bytes:
    parts: list[bytes] = []
    left = count
    while left > 0:
        part = os.read(fd, min(left, _READ_BLOCK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
