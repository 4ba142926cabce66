"""``promptus demo``: build (or reuse) a demo ladder, start the daemon and the server, print the URL.

On a fresh machine with no GPU and no download: a procedurally rendered clip (moving sun,
drifting clouds) is fitted by ``promptus ladder`` for the tiny generator (seeded weights, so
its pictures carry no meaning), then ``promptus daemon`` and ``promptus serve`` run until
Ctrl-C. Everything is kept under ``demo-data/`` (git-ignored) and reused on the next run.
With ``--generator sd-turbo --weights ... --taesd ... --device cuda`` the same command fits
and plays the clip (or ``--source VIDEO``) with SD-Turbo.

The heavy work runs in child processes (the real commands), so this process imports
neither torch nor PyAV; the daemon loads its generator while the ladder is being fitted.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from promptus.cli import CommandError

CHANNEL = "demo"  # the channel the player opens by default
DEFAULT_DATA = Path("demo-data")
DEFAULT_SERVER_PORT = 8080
DEFAULT_DAEMON_PORT = 9090
# The tiny demo clip: 3 s of 64x64 at 30 fps (three 1 s chunks, looped by the player). Small
# enough to fit on two CPU cores in about a minute with the `demo` preset.
CLIP_FRAMES = 90
CLIP_SIZE = 64  # pixels
CLIP_FPS = 30
DEMO_LEVELS = "r2n10,r4n10,r8n10"  # ascending bitrate: about 50, 100 and 190 kbps
CHUNK_SECONDS = 1.0
START_TIMEOUT_S = 300.0  # daemon (torch import, weights) and server start
DAEMON_READY = re.compile(r"promptus daemon: (\S+) generator (\S+) on (.+?); pages allowed")
GENERATORS = ("tiny", "tiny-taesd", "sd-turbo")
ABR_NAMES = (
    "bba",
    "mpc",
    "throughput",
    "bola",
    "fixed",
)  # web/abr/index.js ABR_NAMES (a test keeps them equal)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``promptus demo``."""
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder for the clip, ladders and telemetry (default demo-data)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_SERVER_PORT,
        help=f"media server port (default {DEFAULT_SERVER_PORT})",
    )
    parser.add_argument(
        "--daemon-port",
        type=int,
        default=DEFAULT_DAEMON_PORT,
        help=f"daemon port (default {DEFAULT_DAEMON_PORT})",
    )
    parser.add_argument(
        "--generator",
        choices=GENERATORS,
        default="tiny",
        help="generator to fit and play with (default tiny: CPU, no download)",
    )
    parser.add_argument(
        "--weights", type=Path, help="SD-Turbo weights (sd_turbo.safetensors or a diffusers folder)"
    )
    parser.add_argument("--taesd", type=Path, help="TAESD weights folder (tiny-taesd, sd-turbo)")
    parser.add_argument(
        "--device", default=None, help="torch device (default: cpu for tiny, auto otherwise)"
    )
    parser.add_argument(
        "--source", type=Path, help="video file or frame folder to fit instead of the rendered clip"
    )
    parser.add_argument(
        "--preset", default=None, help="fitting schedule (default: demo for tiny, fast otherwise)"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="fit the ladder again even if one exists"
    )
    parser.add_argument(
        "--abr",
        choices=ABR_NAMES,
        default="mpc",
        help="ABR rule the printed URL selects (default mpc)",
    )


def run(args: argparse.Namespace) -> int:
    """Build or reuse the ladder, start daemon and server, print the URL, wait for Ctrl-C."""
    _check_args(args)
    started = time.monotonic()
    data = args.data.resolve()
    home = data / args.generator
    media = home / "media"
    ladder = media / CHANNEL
    page_origin = f"http://127.0.0.1:{args.port}"
    children: list[Child] = []

    def stop_children(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_children)
    try:
        daemon = Child("daemon", _daemon_command(args, page_origin))
        children.append(daemon)
        if args.rebuild or not _ladder_ready(ladder):
            _build_ladder(args, home, ladder, children)
        generator_id = daemon.wait_for(DAEMON_READY, START_TIMEOUT_S).group(2)
        fitted_for = _ladder_generator(ladder)
        if fitted_for != generator_id:
            print(
                f"promptus demo: the ladder was fitted for {fitted_for}, the daemon runs {generator_id}: fitting again",
                flush=True,
            )
            _build_ladder(args, home, ladder, children)
        server = Child(
            "serve",
            [
                "serve",
                "--media",
                str(media),
                "--port",
                str(args.port),
                "--telemetry",
                str(home / "telemetry.sqlite3"),
            ],
        )
        children.append(server)
        _wait_http(f"{page_origin}/healthz", server, START_TIMEOUT_S)
        print(
            f"\npromptus demo: ready in {time.monotonic() - started:.0f} s\n"
            f"  open {_page_url(args, page_origin)}\n"
            f"  generator {generator_id}"
            + (
                " (seeded random weights: its pictures carry no meaning)"
                if args.generator.startswith("tiny")
                else ""
            )
            + f"\n  telemetry in {home / 'telemetry.sqlite3'}\n  Ctrl-C to stop\n",
            flush=True,
        )
        return _supervise(children)
    except KeyboardInterrupt:
        print("\npromptus demo: stopping", flush=True)
        return 0
    finally:
        for child in reversed(children):
            child.stop()


def render_clip(folder: Path, frames: int = CLIP_FRAMES, size: int = CLIP_SIZE) -> None:
    """Writes a procedural sky clip as PNG frames: a gradient sky, a sun crossing it, drifting clouds."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for index in range(frames):
        t = index / frames  # 0..1 over the clip
        sky = np.stack([0.25 + 0.35 * y, 0.45 + 0.35 * y, 0.85 + 0.1 * y], axis=-1)
        sun_x, sun_y = 0.15 + 0.7 * t, 0.55 - 0.35 * math.sin(math.pi * t)
        sun = np.exp(-((x - sun_x) ** 2 + (y - sun_y) ** 2) / 0.006)[..., None]
        clouds = 0.5 + 0.25 * np.sin(2 * math.pi * (2 * x + 0.6 * t)) * np.sin(
            2 * math.pi * (3 * y + 0.2 * x - 0.4 * t)
        )
        cloud_mask = np.clip((clouds - 0.55) * 4, 0, 1)[..., None] * (y < 0.7)[..., None]
        ground = (y > 0.78 + 0.04 * np.sin(2 * math.pi * (x + 0.1 * t)))[..., None]
        image = sky * (1 - sun) + np.array([1.0, 0.9, 0.5]) * sun
        image = image * (1 - cloud_mask) + 0.95 * cloud_mask
        image = image * (1 - ground) + np.array([0.2, 0.45, 0.2]) * ground
        pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")


class Child:
    """A `promptus` subcommand as a child process.

    ``capture=True``: its output is read line by line (for readiness lines and errors) and
    echoed with a ``[name]`` prefix; ``capture=False``: it writes to our terminal directly
    (progress bars).
    """

    def __init__(self, name: str, args: list[str], *, capture: bool = True) -> None:
        self.name = name
        self.lines: list[str] = []
        env = dict(os.environ)
        # One torch thread per child: the ladder fit and the CPU daemon share two cores.
        env.setdefault("OMP_NUM_THREADS", "1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "promptus", *args],
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name=f"demo-{name}-output", daemon=True)
        if capture:
            self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            print(f"[{self.name}] {line.rstrip()}", flush=True)

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first output line matching ``pattern``; CommandError if the child exits or times out."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                match = pattern.search(line)
                if match:
                    return match
            seen = len(self.lines)
            self._check_alive()
            time.sleep(0.1)
        raise CommandError(f"promptus {self.name} not ready after {timeout_s:.0f} s")

    def wait(self) -> None:
        """Until the child exits; CommandError when it failed."""
        self.process.wait()
        if self._reader.is_alive():
            self._reader.join(5)
        if self.process.returncode != 0:
            raise CommandError(
                f"promptus {self.name} failed (exit {self.process.returncode}): {self._last_line()}"
            )

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            if self._reader.is_alive():
                self._reader.join(5)
            raise CommandError(
                f"promptus {self.name} exited ({self.process.returncode}): {self._last_line()}"
            )

    def _last_line(self) -> str:
        return next((line for line in reversed(self.lines) if line.strip()), "see its output above")

    def stop(self) -> None:
        """SIGTERM (SIGINT may be ignored in a background shell), SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _check_args(args: argparse.Namespace) -> None:
    for flag, port in (("--port", args.port), ("--daemon-port", args.daemon_port)):
        if not 1 <= port <= 65535:
            raise CommandError(f"{flag} {port} is not a TCP port")
    if args.port == args.daemon_port:
        raise CommandError(f"--port and --daemon-port are both {args.port}")
    if args.source is not None and not args.source.exists():
        raise CommandError(f"--source {args.source}: no such file or folder")
    if args.generator == "sd-turbo" and (args.weights is None or args.taesd is None):
        raise CommandError(
            "--generator sd-turbo needs --weights (sd_turbo.safetensors) and --taesd (TAESD folder)"
        )


def _daemon_command(args: argparse.Namespace, page_origin: str) -> list[str]:
    command = [
        "daemon",
        "--port",
        str(args.daemon_port),
        "--generator",
        args.generator,
        "--device",
        _device(args),
    ]
    command += [
        "--allow-origin",
        page_origin,
        "--allow-origin",
        page_origin.replace("127.0.0.1", "localhost"),
    ]
    command += _weight_args(args)
    return command


def _build_ladder(
    args: argparse.Namespace, home: Path, ladder: Path, children: list[Child]
) -> None:
    """Fits the ladder with `promptus ladder` into build/, then moves it into media/ (never served half-built)."""
    source = args.source
    if source is None:
        source = home / "clip"
        if not source.is_dir() or len(list(source.glob("*.png"))) != CLIP_FRAMES:
            shutil.rmtree(source, ignore_errors=True)
            print(
                f"promptus demo: rendering a {CLIP_FRAMES}-frame {CLIP_SIZE}x{CLIP_SIZE} clip into {source}",
                flush=True,
            )
            render_clip(source)
    build = home / "build" / CHANNEL
    preset = args.preset or ("demo" if args.generator.startswith("tiny") else "fast")
    command = [
        "ladder",
        str(source),
        "--out",
        str(build),
        "--generator",
        args.generator,
        "--device",
        _device(args),
    ]
    command += ["--preset", preset, "--levels", DEMO_LEVELS, "--chunk-seconds", str(CHUNK_SECONDS)]
    if args.source is None:
        command += ["--size", str(CLIP_SIZE), "--fps", str(CLIP_FPS)]
    if build.exists() and not args.rebuild:
        command.append("--resume")  # an interrupted earlier build continues
    elif build.exists():
        shutil.rmtree(build)
    command += _weight_args(args)
    print(f"promptus demo: fitting the demo ladder (promptus {' '.join(command)})", flush=True)
    fitting = Child("ladder", command, capture=False)
    children.append(fitting)
    fitting.wait()
    children.remove(fitting)
    if not _ladder_ready(build):
        raise CommandError(f"promptus ladder finished but {build} holds no finished ladder")
    ladder.parent.mkdir(parents=True, exist_ok=True)
    if ladder.exists():
        shutil.rmtree(ladder)
    build.rename(ladder)


def _ladder_ready(path: Path) -> bool:
    """A finished ladder (manifest present, not live)."""
    import json

    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(manifest, dict)
        and manifest.get("live") is False
        and manifest.get("chunk_count", 0) > 0
    )


def _ladder_generator(path: Path) -> str | None:
    import json

    try:
        return str(json.loads((path / "manifest.json").read_text())["generator"]["id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _device(args: argparse.Namespace) -> str:
    if args.device is not None:
        return str(args.device)
    return "cpu" if args.generator.startswith("tiny") else "auto"


def _weight_args(args: argparse.Namespace) -> list[str]:
    extra = []
    if args.weights is not None:
        extra += ["--weights", str(args.weights.resolve())]
    if args.taesd is not None:
        extra += ["--taesd", str(args.taesd.resolve())]
    return extra


def _page_url(args: argparse.Namespace, page_origin: str) -> str:
    url = f"{page_origin}/?channel={CHANNEL}&abr={args.abr}"
    if args.daemon_port != DEFAULT_DAEMON_PORT:
        url += f"&daemon=ws://127.0.0.1:{args.daemon_port}"
    return url


def _wait_http(url: str, child: Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        child._check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"{url} did not answer within {timeout_s:.0f} s")


def _supervise(
    children: list[Child], poll_s: float = 0.5, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Until Ctrl-C; a child that dies ends the demo with its last line."""
    while True:
        for child in children:
            if child.process.poll() is not None:
                raise CommandError(
                    f"promptus {child.name} stopped ({child.process.returncode}): {child._last_line()}"
                )
        sleep(poll_s)
