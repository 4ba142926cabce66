"""The player's files through a real server: gzip for clients that accept it, the same bytes as
they are for others, 304 for a copy the client has, and nothing from outside the web folder."""

from __future__ import annotations

import asyncio
import gzip
import os
from pathlib import Path

import aiohttp
import pytest

from server.web_files import accepts_gzip
from tests.server.conftest import StartServer

MODULE = "export const answer = 42; // " + "a player module, long enough to be worth it " * 40


@pytest.fixture
def web(tmp_path: Path) -> Path:
    folder = tmp_path / "player"
    (folder / "controllers").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>player</title>" + " " * 500)
    (folder / "controllers" / "stream.js").write_text(MODULE)
    (folder / "poster.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    (tmp_path / "secret.js").write_text("export const secret = 1;")
    (folder / "inside.js").symlink_to(folder / "controllers" / "stream.js")
    (folder / "outside.js").symlink_to(tmp_path / "secret.js")
    os.mkfifo(folder / "fifo.js")
    return folder


@pytest.fixture
async def raw() -> aiohttp.ClientSession:
    """A client that shows the bytes on the wire (no transparent decompression)."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def status_of_raw_get(port: int, path: str, encoding: str) -> int:
    """The status of a GET sent byte for byte as written (a client library would normalise
    ``..`` away before it reached the server)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {encoding}\r\n"
        writer.write(f"{request}Connection: close\r\n\r\n".encode())
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    return int(status_line.split()[1])


def test_accept_encoding_is_read_as_rfc_9110_says() -> None:
    assert accepts_gzip("gzip, deflate, br") and accepts_gzip("*") and accepts_gzip("GZIP;Q=0.5")
    assert not accepts_gzip("") and not accepts_gzip("identity") and not accepts_gzip("gzip;q=0")
    assert accepts_gzip("*;q=0, gzip") and not accepts_gzip("gzip;q=0, *")


async def test_text_files_go_compressed_to_clients_that_accept_gzip(
    start_server: StartServer, web: Path, raw: aiohttp.ClientSession
) -> None:
    server = await start_server(web_dir=web)
    url = server.make_url("/controllers/stream.js")
    async with raw.get(url, headers={"Accept-Encoding": "gzip, br"}) as response:
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Vary"] == "Accept-Encoding"
        assert response.content_type == "text/javascript"
        body = await response.read()
        etag = response.headers["ETag"]
    assert gzip.decompress(body) == MODULE.encode() and len(body) < len(MODULE) / 4
    async with raw.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag}) as response:
        assert response.status == 304 and await response.read() == b""
    async with raw.get(url, headers={"Accept-Encoding": "identity"}) as response:
        assert "Content-Encoding" not in response.headers
        assert response.headers["Vary"] == "Accept-Encoding"
        assert await response.read() == MODULE.encode()
    async with raw.get(server.make_url("/"), headers={"Accept-Encoding": "gzip"}) as response:
        assert response.content_type == "text/html" and response.charset == "utf-8"
        assert gzip.decompress(await response.read()).startswith(b"<!doctype html>")
    async with raw.get(server.make_url("/poster.png"), headers={"Accept-Encoding": "gzip"}) as r:
        assert "Content-Encoding" not in r.headers and (await r.read()).startswith(b"\x89PNG")

    # a new version of the file is compressed again, not served from the old copy
    changed = MODULE.replace("42", "43")
    (web / "controllers" / "stream.js").write_text(changed)
    os.utime(web / "controllers" / "stream.js", ns=(1, 1))
    async with raw.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag}) as response:
        assert response.status == 200 and response.headers["ETag"] != etag
        assert gzip.decompress(await response.read()) == changed.encode()


async def test_only_regular_files_inside_the_web_folder_are_served(
    start_server: StartServer, web: Path, raw: aiohttp.ClientSession
) -> None:
    server = await start_server(web_dir=web)
    async with raw.get(server.make_url("/inside.js"), headers={"Accept-Encoding": "gzip"}) as r:
        assert r.status == 200 and gzip.decompress(await r.read()) == MODULE.encode()
    for path in (
        "/outside.js",  # a symlink out of the folder
        "/../secret.js",
        "/%2e%2e/secret.js",
        "/controllers/%2e%2e/%2e%2e/secret.js",
        "/controllers/..%2f..%2fsecret.js",
        "/fifo.js",  # would block a reader
        "/controllers",  # a folder
        "/missing.js",
    ):
        for encoding in ("gzip", "identity"):
            status = await status_of_raw_get(server.port, path, encoding)
            assert status in (400, 404), (path, encoding, status)
    async with raw.get(server.make_url("/healthz")) as response:  # other routes come first
        assert response.status == 200 and (await response.json())["status"] == "ok"
