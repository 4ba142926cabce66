"""Does `promptus demo` play in real time here? Stalls over a minute of playback in Chromium.

    python scripts/bench_demo_playback.py                 # fresh demo-data, 60 s of playback
    python scripts/bench_demo_playback.py --seconds 120 --data runs/demo-bench

Starts `promptus demo` (nano, the shipped clip; a fresh --data folder fits its ladder first),
opens the printed URL in Debian's headless Chromium (Playwright), and samples the player's
snapshot once a second: stalls, stalled seconds, startup time, the level played and the
daemon's measured fps. Prints a summary and writes docs/benchmarks/demo_playback_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchkit import write_document  # noqa: E402

from common.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser the tests use)

READY = re.compile(r"open (http://\S+)")


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="playback to watch")
    parser.add_argument("--data", type=Path, default=None, help="demo --data (default: fresh)")
    parser.add_argument(
        "--json", type=Path, default=REPO / "docs/benchmarks/demo_playback_cpu.json"
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    data = args.data or Path(tempfile.mkdtemp(prefix="promptus-demo-bench-"))
    command = [sys.executable, "-m", "promptus", "demo", "--data", str(data)]
    started = time.monotonic()
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = None
    assert demo.stdout is not None
    for line in demo.stdout:
        print(line, end="")
        if match := READY.search(line):
            url = match.group(1)
            break
    ready_s = time.monotonic() - started
    samples = []
    try:
        if url is None:
            raise SystemExit("promptus demo ended without printing its URL")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
            )
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function(
                "() => window.promptusPlayer?.snapshot().startupS != null", timeout=120_000
            )
            watch_from = time.monotonic()
            while time.monotonic() - watch_from < args.seconds:
                s = page.evaluate("() => window.promptusPlayer.snapshot()")
                samples.append({"t": round(time.monotonic() - watch_from, 1), "load": load_average(),
                                **{k: s.get(k) for k in ("currentTime", "stalls", "stallS", "startupS",
                                                         "chosenLevel", "daemonFps", "droppedFrames")}})  # fmt: skip
                time.sleep(1.0)
            browser.close()
    finally:
        demo.terminate()
        demo.wait(timeout=30)
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    last = samples[-1]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cpu": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "ready_s": round(ready_s, 1),
        "watched_s": args.seconds,
        "played_s": last["currentTime"],
        "startup_s": last["startupS"],
        "stalls": last["stalls"],
        "stalled_s": last["stallS"],
        "load_average_max": max(s["load"] for s in samples),
        "samples": samples,
    }
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    write_document(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
