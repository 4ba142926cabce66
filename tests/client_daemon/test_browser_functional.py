"""Debian Chromium as the page: Origin refusal seen by a browser, and MSE plays the segments."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from client_daemon.daemon import Daemon
from client_daemon.settings import DaemonSettings
from common.browser import CHROMIUM, CHROMIUM_ARGS
from prompts.chunk import encode_chunk
from tests.client_daemon.helpers import FPS, FRAMES, make_chunk, open_message
from wire.media import encode_chunk_message

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The page: open the stream, forward every chunk, append init + segments to MSE, play.
PAGE = """<!doctype html><video id="v" muted></video><script>
const daemon = DAEMON_URL, messages = MESSAGES.map(b => Uint8Array.from(atob(b), c => c.charCodeAt(0)));
window.result = null;
const ws = new WebSocket(daemon); ws.binaryType = "arraybuffer";
ws.onclose = e => { if (!window.result) window.result = {closed: e.code, reason: e.reason}; };
const video = document.getElementById("v"), media = new MediaSource(), queue = [];
let buffer = null, segments = 0;
video.src = URL.createObjectURL(media);
function pump() { if (buffer && !buffer.updating && queue.length) buffer.appendBuffer(queue.shift()); }
ws.onopen = () => ws.send(messages[0]);
ws.onmessage = e => {
  if (typeof e.data === "string") { const m = JSON.parse(e.data); if (m.type === "error") window.errors = (window.errors || []).concat([m]); return; }
  const view = new DataView(e.data), length = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(e.data, 4, length)));
  const payload = new Uint8Array(e.data, 4 + length);
  if (header.type === "init") {
    window.mime = header.mime;
    buffer = media.addSourceBuffer(header.mime); buffer.mode = "segments";
    buffer.addEventListener("updateend", () => { pump(); finish(); });
    queue.push(payload); pump();
    for (const m of messages.slice(1)) ws.send(m);
  } else if (header.type === "segment") { segments += 1; queue.push(payload); pump(); }
};
function finish() {
  if (segments < messages.length - 1 || queue.length || buffer.updating || media.readyState !== "open") return;
  media.endOfStream();
  video.onended = () => { window.result = {
    mime: window.mime, buffered: [video.buffered.start(0), video.buffered.end(0)], ranges: video.buffered.length,
    frames: video.getVideoPlaybackQuality().totalVideoFrames, size: [video.videoWidth, video.videoHeight],
    errors: window.errors || []}; };
  video.play();
}
</script>"""


@dataclass
class Site:
    """An HTTP server for the test page; its origin is http://127.0.0.1:<port>."""

    port: int
    html: str = ""


@pytest.fixture
async def site(unused_tcp_port: int) -> AsyncIterator[Site]:
    served = Site(unused_tcp_port)

    async def serve_page(request: web.Request) -> web.Response:
        return web.Response(text=served.html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", serve_page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", served.port).start()
    yield served
    await runner.cleanup()


async def run_page(url: str) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.wait_for_function("window.result !== null", timeout=120_000)
            return await page.evaluate("window.result")
        finally:
            await browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
async def test_chromium_plays_the_segments_and_sees_refusals(site: Site, tiny_generator) -> None:  # noqa: ANN001
    gid = tiny_generator.generator_id
    messages = [open_message(gid).encode()] + [
        encode_chunk_message("sky", 0, i, encode_chunk(make_chunk(i, gid))) for i in range(4)
    ]
    allowed = f"http://127.0.0.1:{site.port}"
    settings = DaemonSettings(port=0, allowed_origins=(allowed,))
    async with Daemon(tiny_generator, settings) as daemon:
        page = PAGE.replace("DAEMON_URL", json.dumps(daemon.url)).replace(
            "MESSAGES", json.dumps([base64.b64encode(m).decode() for m in messages])
        )
        site.html = page
        played = await run_page(f"{allowed}/")
        refused = await run_page(f"http://localhost:{site.port}/")  # same page, other origin
    assert played["errors"] == []
    assert played["mime"].startswith('video/mp4; codecs="avc1.')
    assert played["size"] == [64, 64]
    assert played["ranges"] == 1  # one continuous buffered range
    assert played["buffered"] == pytest.approx([0, FRAMES / FPS], abs=1 / FPS)
    assert played["frames"] >= FRAMES - 2  # decoded by Chromium (the first may be dropped)
    assert refused["closed"] == 1008
    assert f"origin http://localhost:{site.port} not allowed" in refused["reason"]
