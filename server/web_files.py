"""The browser player's files: ``index.html`` at `/`, every other file of the web folder at its
path, and text files gzip-compressed for clients that accept it.

The page loads 31 files, 148 KB, before it can ask for a chunk; compressed they are 54 KB,
which is most of the page's start-up on a slow link (at 40 kbit/s: 30 s, compressed 11 s). Each
file is compressed once per version (its modification time and size) in a worker thread and
kept in memory; the folder is the operator's, not the viewers', so it bounds what is kept.
Paths resolve inside the folder (``..`` and symlinks out of it are 404, symlinks within it are
followed) and only regular files are opened (a FIFO would block the read).
"""

from __future__ import annotations

import asyncio
import gzip
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from server.media_files import MediaFileError, read_media_file, resolve_inside

INDEX_NAME = "index.html"
COMPRESSED_SUFFIXES = frozenset({".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt", ".md"})
MAX_COMPRESSED_FILE_BYTES = 4 * 2**20  # a larger text file goes as it is
JAVASCRIPT = "text/javascript"  # RFC 9239; module scripts need a JavaScript type
GZIP_LEVEL = 6  # zlib's default: most of level 9's gain at a third of its time


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110: ``gzip;q=0`` refuses it, and
    an explicit ``gzip`` outranks ``*``)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *parameters = (part.strip().lower() for part in item.split(";"))
        weight = 1.0
        for parameter in parameters:
            if parameter.startswith("q="):
                try:
                    weight = float(parameter[2:])
                except ValueError:
                    weight = 0.0
        weights[coding] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


@dataclass(frozen=True)
class _Compressed:
    version: tuple[int, int]  # (st_mtime_ns, st_size) of the file it was made from
    body: bytes


class WebFiles:
    """Serves one web folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._compressed: dict[Path, _Compressed] = {}

    def add_routes(self, app: web.Application) -> None:
        """`/` and `/{path}`; register after every other route (this one takes any path)."""
        app.router.add_get("/", self.handle_index)
        app.router.add_get("/{path:.+}", self.handle_file)

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, INDEX_NAME)

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, request.match_info["path"])

    def _regular_file(self, relative: str) -> tuple[Path, os.stat_result] | None:
        """The regular file ``relative`` names inside the folder (resolved) and its status."""
        if "\x00" in relative:
            return None
        try:
            path = resolve_inside(self.root / relative, self.root)
            status = path.stat()
        except OSError:  # missing, unreadable, or out of the folder (MediaFileError)
            return None
        return (path, status) if stat.S_ISREG(status.st_mode) else None

    async def _serve(self, request: web.Request, relative: str) -> web.StreamResponse:
        found = await asyncio.to_thread(self._regular_file, relative)  # no disk on the loop
        if found is None:
            raise web.HTTPNotFound()
        path, status = found
        compressible = (
            path.suffix.lower() in COMPRESSED_SUFFIXES
            and status.st_size <= MAX_COMPRESSED_FILE_BYTES
        )
        if not compressible or not accepts_gzip(request.headers.get("Accept-Encoding", "")):
            response: web.StreamResponse = web.FileResponse(path)
            if compressible:
                response.headers["Vary"] = "Accept-Encoding"
            return response
        version = (status.st_mtime_ns, status.st_size)
        etag = f"{version[0]:x}-{version[1]:x}-gzip"
        headers = {"Vary": "Accept-Encoding", "ETag": f'"{etag}"'}
        if any(tag.value in (etag, "*") for tag in request.if_none_match or ()):
            return web.Response(status=304, headers=headers)
        body = await self._compressed_body(path, version)
        if body is None:  # changed between the stat and the read: as it is now
            return web.FileResponse(path)
        content_type = content_type_of(path)
        response = web.Response(
            body=body, content_type=content_type, headers={**headers, "Content-Encoding": "gzip"}
        )
        if content_type.startswith("text/") or content_type.endswith(("javascript", "json")):
            response.charset = "utf-8"
        response.last_modified = status.st_mtime
        return response

    async def _compressed_body(self, path: Path, version: tuple[int, int]) -> bytes | None:
        cached = self._compressed.get(path)
        if cached is not None and cached.version == version:
            return cached.body
        body = await asyncio.to_thread(_compressed_file, path, self.root, version[1])
        if body is not None:
            self._compressed[path] = _Compressed(version, body)
        return body


def content_type_of(path: Path) -> str:
    if path.suffix.lower() in (".js", ".mjs"):
        return JAVASCRIPT  # whatever this machine's mimetypes says of .mjs
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _compressed_file(path: Path, root: Path, size: int) -> bytes | None:
    """gzip of the file, or None when it is no longer a regular file of ``size`` bytes."""
    try:
        data = read_media_file(path, root, limit=MAX_COMPRESSED_FILE_BYTES, expected=size)
    except MediaFileError:
        return None
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def add_web_player(app: web.Application, web_dir: Path) -> None:
    """The player's files at `/` (a missing folder serves 404s)."""
    WebFiles(web_dir).add_routes(app)
