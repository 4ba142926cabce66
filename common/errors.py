"""The base class of every failure whose message is meant for a person."""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can act on: wrong input, a missing file, a refused request.

    Packages derive their own errors from it (``ManifestError``, ``ChunkFormatError``,
    ``GeneratorMismatchError``, ...). Only the roof (the ``promptus`` command) turns it into a
    one-line message and exit status 2; lower floors raise it and never exit.
    """
