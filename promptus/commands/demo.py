"""``promptus demo``: build (or reuse) a demo ladder, start the daemon and the server, print the URL.

On a fresh machine with no GPU and no download: the shipped clip (``promptus/demo_clip/``, an
openly licensed excerpt the generator never trained on) is fitted by ``promptus ladder`` for
the nano generator (trained here, weights shipped; its prompt encoder starts every keyframe),
then ``promptus daemon`` and ``promptus serve`` run until Ctrl-C. Everything is kept under
``demo-data/`` (git-ignored) and reused on the next run. ``--generator tiny`` plays a procedural
clip through the tiny generator (seeded weights: the mechanics, no meaning); with
``--generator sd-turbo --weights ... --taesd ... --device cuda`` the same command fits and plays
the clip (or ``--source VIDEO``) with SD-Turbo.

The heavy work runs in child processes (the real commands), so this process imports
neither torch nor PyAV; the daemon loads its generator while the ladder is being fitted.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import IO

from authoring.presets import PRESETS
from authoring.procedural_clip import render_clip
from client_daemon.ready import read_ready_file
from common.ports import port_free, port_holder
from common.processes import Child, first_exited, promptus_command
from prompts.stream_model import GeneratorMismatchError, check_generator
from promptus.errors import CommandError
from promptus.options import add_generator_options, check_weights_given

CHANNEL = "demo"  # the channel the player opens by default
DEFAULT_DATA = Path("demo-data")
DEFAULT_SERVER_PORT = 8080
DEFAULT_DAEMON_PORT = 9090
DEMO_GENERATOR = "nano"  # the demo's default: real pictures on two CPU cores, nothing to download
# The shipped clip (licence and attribution beside it), fitted at its own 192x192 and 24 fps.
DEMO_CLIP = Path(__file__).resolve().parent.parent / "demo_clip" / "caminandes-llama-192.mp4"
DEMO_CLIP_SIZE = 192  # pixels
# The tiny generators' procedural clip: 3 s of 64x64 at 30 fps (three 1 s chunks, looped by the
# player). Small enough to fit on two CPU cores in about a minute with the `demo` preset.
CLIP_FRAMES = 90
CLIP_SIZE = 64  # pixels
CLIP_FPS = 30
DEMO_LEVELS = "r2n10,r4n10,r8n10"  # ascending bitrate: about 50, 100 and 190 kbps
CHUNK_SECONDS = 1.0
START_TIMEOUT_S = 300.0  # daemon (torch import, weights) and server start
SUPERVISE_POLL_S = 0.5
# web/abr/index.js ABR_NAMES (a test keeps them equal)
ABR_NAMES = ("bba", "mpc", "throughput", "bola", "fixed")
# Torch threads per child. The fit runs before anything plays, the daemon afterwards beside the
# browser: nano makes 30 fps on one thread and 59 on two at 192x192 (docs/engines.md), so the
# daemon takes both cores and keeps half of them free at the clip's 24 fps.
FIT_THREADS = 1
DAEMON_THREADS = 2
HOST = "127.0.0.1"  # where the server and the daemon listen (their commands' default)
# In the generator's folder, locked (flock) while a demo runs there; it names that demo.
LOCK_NAME = "demo.lock"
PORT_SEARCH = 100  # ports tried above a taken one for the suggestion in the message


def demo_ladder_dir(data: Path = DEFAULT_DATA, generator: str = DEMO_GENERATOR) -> Path:
    """Where the demo keeps the finished ladder of ``generator`` (the emulator's default ladder)."""
    return data / generator / "media" / CHANNEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``promptus demo``."""
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder for the clip, ladders and telemetry",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_SERVER_PORT,
        help="media server port",
    )
    parser.add_argument(
        "--daemon-port",
        type=int,
        default=DEFAULT_DAEMON_PORT,
        help="daemon port",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="video file or frame folder to fit (default: the shipped clip; the tiny generators: a "
        f"rendered {CLIP_FRAMES / CLIP_FPS:g} s {CLIP_SIZE}x{CLIP_SIZE} sky clip)",
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help="fitting schedule (default: encoder for nano, demo for the tiny generators, fast otherwise)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="fit the ladder again even if one exists"
    )
    parser.add_argument(
        "--abr",
        choices=ABR_NAMES,
        default="mpc",
        help="ABR rule the printed URL selects",
    )
    add_generator_options(parser, default=DEMO_GENERATOR)


def run(args: argparse.Namespace) -> int:
    """Build or reuse the ladder, start daemon and server, print the URL, wait for Ctrl-C."""
    _check_args(args)
    started = time.monotonic()
    data = args.data.resolve()
    home = data / args.generator
    page_origin = f"http://{HOST}:{args.port}"
    # Before anything is touched: another demo of this folder, or a port someone holds.
    lock = _hold_home(home, args, _page_url(args, page_origin))
    try:
        _check_ports(args)
        return _run_demo(args, started, home, demo_ladder_dir(data, args.generator), page_origin)
    finally:
        lock.close()  # releases the folder


def _run_demo(
    args: argparse.Namespace, started: float, home: Path, ladder: Path, page_origin: str
) -> int:
    """The demo in ``home`` (locked): daemon, ladder, server; until Ctrl-C or a child stops."""
    media = ladder.parent
    ready_file = home / "daemon.ready.json"
    ready_file.unlink(missing_ok=True)  # a dead daemon's: the folder is ours now
    children: list[Child] = []

    def stop_children(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_children)
    try:
        daemon = _child(
            "daemon", _daemon_command(args, page_origin, ready_file), threads=DAEMON_THREADS
        )
        children.append(daemon)
        fitted = args.rebuild or not _ladder_ready(ladder)
        if fitted:
            _build_ladder(args, home, ladder, children)
        generator_id = _daemon_generator_id(daemon, ready_file)
        try:
            check_generator(_ladder_generator(ladder) or "none", generator_id, "the demo ladder")
        except GeneratorMismatchError as error:
            print(f"promptus demo: {error}: fitting again", flush=True)
            _build_ladder(args, home, ladder, children)
        else:
            if not fitted:
                print(_reuse_message(ladder), flush=True)
        telemetry = home / "telemetry.sqlite3"
        server = _child(
            "serve",
            [
                "serve",
                "--media",
                str(media),
                "--port",
                str(args.port),
                "--telemetry",
                str(telemetry),
            ],
        )
        children.append(server)
        server.wait_for_http(f"{page_origin}/healthz", START_TIMEOUT_S)
        print(
            f"\npromptus demo: ready in {time.monotonic() - started:.0f} s\n"
            f"  open {_page_url(args, page_origin)}\n"
            f"  generator {generator_id}{GENERATOR_NOTES.get(args.generator, '')}"
            + f"\n  telemetry in {telemetry}\n  Ctrl-C to stop\n",
            flush=True,
        )
        return _supervise(children)
    except KeyboardInterrupt:
        print("\npromptus demo: stopping", flush=True)
        return 0
    finally:
        for child in reversed(children):
            child.stop()


# Seconds-scale fits on two CPU cores (authoring/presets.py); other generators get `fast`.
DEMO_PRESETS = {"tiny": "demo", "tiny-taesd": "demo", "nano": "encoder"}
GENERATOR_NOTES = {
    "tiny": " (seeded random weights: its pictures carry no meaning)",
    "tiny-taesd": " (seeded random UNet: its pictures carry no meaning)",
    "nano": " (trained here; blurred like a thumbnail of the same bytes; docs/engines.md)",
}


def _child(name: str, args: list[str], *, echo: bool = True, threads: int = FIT_THREADS) -> Child:
    """``promptus ARGS`` as a supervised child (output echoed as ``[name] ...`` or inherited)
    running ``threads`` torch threads."""
    output = "capture" if echo else "inherit"
    env = {"OMP_NUM_THREADS": str(threads)}
    return Child(name, promptus_command(*args), env=env, output=output, echo=echo)


def _daemon_generator_id(daemon: Child, ready_file: Path) -> str:
    """The generator id the daemon announces in its ready file."""
    return read_ready_file(daemon.wait_for_file(ready_file, START_TIMEOUT_S)).generator_id


def _check_args(args: argparse.Namespace) -> None:
    for flag, port in (("--port", args.port), ("--daemon-port", args.daemon_port)):
        if not 1 <= port <= 65535:
            raise CommandError(f"{flag} {port} is not a TCP port")
    if args.port == args.daemon_port:
        raise CommandError(f"--port and --daemon-port are both {args.port}")
    if args.source is not None and not args.source.exists():
        raise CommandError(f"--source {args.source}: no such file or folder")
    check_weights_given(args)


def _hold_home(home: Path, args: argparse.Namespace, url: str) -> IO[str]:
    """Lock ``home`` for this demo (held until the returned file is closed), or CommandError
    naming the demo that runs there: two demos of one folder would share its ready file,
    ladder build and telemetry database."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / LOCK_NAME).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read()
        handle.close()
        raise CommandError(_running_demo_message(home, holder)) from None
    handle.seek(0)
    handle.truncate()
    about = {"pid": os.getpid(), "url": url, "port": args.port, "daemon_port": args.daemon_port}
    handle.write(json.dumps({**about, "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
    handle.flush()
    return handle


def _running_demo_message(home: Path, holder: str) -> str:
    try:
        about = json.loads(holder)
        who = f"pid {about['pid']}, since {about['started']}, at {about['url']}"
        stop = f"Ctrl-C in its terminal, or kill {about['pid']}"
    except (ValueError, KeyError, TypeError):
        who, stop = "its lock file says no more", "Ctrl-C in its terminal"
    return (
        f"a demo already runs on {home} ({who}); stop it first ({stop}) or give this one "
        "another --data folder"
    )


def _check_ports(args: argparse.Namespace) -> None:
    """CommandError when ``--port`` or ``--daemon-port`` is taken, naming who holds it."""
    ports = {"--port": args.port, "--daemon-port": args.daemon_port}
    taken = [(flag, port) for flag, port in ports.items() if not port_free(HOST, port)]
    if not taken:
        return
    problems = []
    for flag, port in taken:
        holder = port_holder(port)
        who = holder.describe() if holder else "another program (not one this user can see)"
        problems.append(f"{flag} {port} is in use by {who}")
    chosen: list[int] = []
    for port in ports.values():
        chosen.append(_free_port_from(port, set(chosen)))
    suggestion = " ".join(f"{flag} {port}" for flag, port in zip(ports, chosen, strict=True))
    raise CommandError(
        "; ".join(problems)
        + f". Stop {'them' if len(taken) > 1 else 'it'}, or run the demo on free ports: "
        f"promptus demo {suggestion}"
    )


def _free_port_from(port: int, taken: set[int]) -> int:
    """``port`` when free, else the next free port above it, none of ``taken`` (a suggestion)."""
    for candidate in range(port, min(port + PORT_SEARCH, 65536)):
        if candidate not in taken and port_free(HOST, candidate):
            return candidate
    return port


def _reuse_message(ladder: Path) -> str:
    fitted = time.strftime(
        "%Y-%m-%d %H:%M", time.localtime((ladder / "manifest.json").stat().st_mtime)
    )
    return (
        f"promptus demo: reusing the ladder in {ladder} (from {fitted}); "
        "`promptus demo --rebuild` fits it again"
    )


def _daemon_command(args: argparse.Namespace, page_origin: str, ready_file: Path) -> list[str]:
    command = ["daemon", "--port", str(args.daemon_port), "--ready-file", str(ready_file)]
    command += ["--allow-origin", page_origin]
    command += ["--allow-origin", page_origin.replace("127.0.0.1", "localhost")]
    return command + _generator_args(args)


def _build_ladder(
    args: argparse.Namespace, home: Path, ladder: Path, children: list[Child]
) -> None:
    """Fits the ladder with `promptus ladder` into build/, then moves it into media/ (never served half-built)."""
    source = args.source
    procedural = source is None and args.generator.startswith("tiny")
    if source is None and not procedural:
        source = DEMO_CLIP
    if procedural:
        source = home / "clip"
        if not source.is_dir() or len(list(source.glob("*.png"))) != CLIP_FRAMES:
            shutil.rmtree(source, ignore_errors=True)
            print(
                f"promptus demo: rendering a {CLIP_FRAMES}-frame {CLIP_SIZE}x{CLIP_SIZE} clip into {source}",
                flush=True,
            )
            render_clip(source, CLIP_FRAMES, CLIP_SIZE)
    build = home / "build" / CHANNEL
    preset = args.preset or DEMO_PRESETS.get(args.generator, "fast")
    command = ["ladder", str(source), "--out", str(build), *_generator_args(args)]
    command += ["--preset", preset, "--levels", DEMO_LEVELS, "--chunk-seconds", str(CHUNK_SECONDS)]
    if procedural:
        command += ["--size", str(CLIP_SIZE), "--fps", str(CLIP_FPS)]
    elif args.source is None:
        command += ["--size", str(DEMO_CLIP_SIZE)]
    if build.exists() and not args.rebuild:
        command.append("--resume")  # an interrupted earlier build continues
    elif build.exists():
        shutil.rmtree(build)
    print(f"promptus demo: fitting the demo ladder (promptus {' '.join(command)})", flush=True)
    fitting = _child("ladder", command, echo=False)  # its progress bars go to the terminal
    children.append(fitting)
    status = fitting.wait()
    children.remove(fitting)
    if status != 0:
        raise CommandError(f"promptus ladder failed (exit {status}); its output is above")
    if not _ladder_ready(build):
        raise CommandError(f"promptus ladder finished but {build} holds no finished ladder")
    _publish(build, ladder)


def _publish(build: Path, ladder: Path) -> None:
    """Move a finished build into place; the build folder goes when nothing else is in it."""
    ladder.parent.mkdir(parents=True, exist_ok=True)
    if ladder.exists():
        shutil.rmtree(ladder)
    build.rename(ladder)
    try:
        build.parent.rmdir()
    except OSError:
        pass  # not empty: another channel's build


def _ladder_ready(path: Path) -> bool:
    """A finished ladder (manifest present, not live)."""
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
    try:
        return str(json.loads((path / "manifest.json").read_text())["generator"]["id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _generator_args(args: argparse.Namespace) -> list[str]:
    """The generator options, passed on to a child command as given."""
    extra = ["--generator", args.generator, "--device", args.device]
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


def _supervise(children: list[Child]) -> int:
    """Until Ctrl-C; a child that dies ends the demo with its last line."""
    while True:
        exited = first_exited(children)
        if exited is not None:
            raise CommandError(
                f"promptus {exited.name} stopped ({exited.returncode}): {exited.last_line()}"
            )
        time.sleep(SUPERVISE_POLL_S)
