"""One full-mode viewing session: headless Chromium opens the player page and we sample its state.

Run inside the viewer's namespace by ``emulation.full``; prints one JSON document on stdout:
``{"samples": [{t, snapshot fields...}], "error": null | str}``. The page's own
``window.promptusPlayer.snapshot()`` is the source (level, chunk, buffer, stalls, startup).

    python -m emulation.browser_session --url URL --seconds 60 [--screenshot PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

CHROMIUM = "/usr/bin/chromium"
SAMPLE_S = 0.25  # s between two snapshots (Puffer's client-info timer)
PAGE_TIMEOUT_MS = 120_000  # ms; the page (about 150 KB of modules) takes 30 s on a 40 kbit/s link
SNAPSHOT_FIELDS = (
    "state",
    "levelId",
    "chunk",
    "bufferS",
    "throughputKbps",
    "daemonFps",
    "stalls",
    "stallS",
    "startupS",
    "currentTime",
    "decodedFrames",
    "daemonConnected",
    "serverConnected",
    "blocked",
)


def run_session(url: str, seconds: float, screenshot: str | None) -> dict[str, object]:
    """Opens ``url`` and samples the player every SAMPLE_S for ``seconds`` (bounded)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    samples: list[dict[str, object]] = []
    console: list[str] = []
    error: str | None = None
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]))
            started = time.monotonic()
            page.goto(url, timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function(
                "() => window.promptusPlayer !== undefined", timeout=PAGE_TIMEOUT_MS
            )
            fields = json.dumps(SNAPSHOT_FIELDS)
            for _ in range(int(seconds / SAMPLE_S) + 1):  # bounded by count and by the deadline
                if time.monotonic() - started > seconds:
                    break
                snapshot = page.evaluate(
                    f"() => {{ const s = window.promptusPlayer.snapshot(); const out = {{}};"
                    f" for (const k of {fields}) out[k] = s[k] ?? null; return out; }}"
                )
                samples.append({"t": time.monotonic() - started, **snapshot})
                page.wait_for_timeout(SAMPLE_S * 1000)
            if screenshot:
                page.screenshot(path=screenshot)
        except PlaywrightError as exc:
            error = str(exc).splitlines()[0]
        finally:
            browser.close()
    return {"samples": samples, "error": error, "console": console[-50:]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--screenshot", default=None)
    args = parser.parse_args()
    json.dump(run_session(args.url, args.seconds, args.screenshot), sys.stdout)


if __name__ == "__main__":
    main()
