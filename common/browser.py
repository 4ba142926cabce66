"""Debian's Chromium for Playwright: where it is and the flags the browser tests and the playback
benchmark (``scripts/bench_demo_playback.py``) launch it with."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Flags from docs/reference media-tools notes: headless real-time playback, no GPU, autoplay allowed.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
)
