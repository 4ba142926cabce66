"""The catalog of channels: one ladder directory per channel under the media folder.

It re-scans the folder every few hundred milliseconds (off the event loop, on a daemon
thread that shutdown never waits for), so new channels and new chunks of live ladders
appear without a restart. A manifest is re-read only when its file changed, through
``server.media_files`` (a regular file inside the media folder, read bounded), and
validated against everything the server and the daemon rely on, its init state included.
A channel that fails is logged, listed in ``problems`` (``/healthz``, ``/metrics``) and
skipped (or keeps its last good state); the others keep serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from common.log_throttle import DEFAULT_INTERVAL_S, LogThrottle
from common.threads import in_daemon_thread
from prompts.init_state import MAX_INIT_STATE_BYTES
from prompts.ladder import MANIFEST_NAME, verify_init_state
from prompts.manifest import MAX_MANIFEST_BYTES, ChunkInfo, Manifest, ManifestError
from server.media_files import read_media_file
from wire.media import CHANNEL_PATTERN, ManifestMessage

log = logging.getLogger(__name__)

FileStamp = tuple[int, int, int]  # (mtime_ns, size, inode) of manifest.json


@dataclass(frozen=True)
class Channel:
    """One published ladder as the server currently sees it."""

    name: str
    path: Path
    root: Path  # the media folder, resolved: every file the channel reads resolves inside it
    manifest: Manifest
    document: dict[str, Any]  # manifest.json exactly as published
    message: str  # the encoded `manifest` message (built once per version, sent to many)
    version: int  # grows whenever the manifest changes
    stamp: FileStamp
    init_stamp: FileStamp | None  # of init.bin, which every (re)write of a ladder replaces
    # changes only when already published chunks may have changed (the ladder was rewritten),
    # not when a live ladder merely grew: caches key on it
    content: int = 0

    @property
    def live(self) -> bool:
        return self.manifest.stream.live

    @property
    def chunk_count(self) -> int:
        return self.manifest.chunk_count


class Catalog:
    """Channels by id, refreshed from disk by `watch` (a background task)."""

    def __init__(
        self, media_dir: Path, poll_s: float, log_interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        self.media_dir = Path(media_dir)
        self.root = self.media_dir.resolve()
        self.poll_s = poll_s
        self._channels: dict[str, Channel] = {}
        self._versions = 0
        self.scans = 0  # completed scans of the folder
        self._lock = asyncio.Lock()
        # manifests already refused (logged once per file version): stamp and reason
        self._refused: dict[Path, tuple[FileStamp, str]] = {}
        self.problems: dict[str, str] = {}  # channel -> why its ladder is refused, last scan
        # a scan that fails every poll (out of file descriptors) logs one line per interval
        self._failures = LogThrottle(log, log_interval_s)
        self.failed_scans = 0

    def get(self, name: str) -> Channel | None:
        """The channel ``name`` as of the last refresh."""
        return self._channels.get(name)

    def channels(self) -> list[Channel]:
        """The channels as of the last refresh, by name."""
        return [self._channels[name] for name in sorted(self._channels)]

    def __len__(self) -> int:
        return len(self._channels)

    async def refresh(self) -> None:
        """Re-scan the media folder on a daemon thread and publish the result."""
        async with self._lock:
            current = dict(self._channels)
            scanned, problems = await in_daemon_thread(self._scan, current, name="catalog-scan")
            for name, channel in scanned.items():
                known = current.get(name)
                if channel is not known:
                    self._versions += 1
                    same = (
                        known is not None
                        and known.init_stamp == channel.init_stamp
                        and extends(known.manifest, channel.manifest)
                    )
                    content = known.content if same and known is not None else self._versions
                    scanned[name] = replace(channel, version=self._versions, content=content)
                    log.info(
                        "channel %s: %d chunks%s",
                        name,
                        channel.chunk_count,
                        " (live)" if channel.live else "",
                    )
            for name in current.keys() - scanned.keys():
                log.info("channel %s removed", name)
            self._channels = scanned
            self.problems = problems
            self.scans += 1

    async def watch(self) -> None:
        """Refresh forever; one failed scan is logged and the next one tried."""
        while True:
            try:
                await self.refresh()
            except OSError as error:  # EMFILE, an unmounted disk: a line, no traceback
                self.failed_scans += 1
                self._failures.log(
                    logging.ERROR, "scan", "catalog scan of %s failed: %s", self.media_dir, error
                )
            except Exception as error:  # noqa: BLE001 - a scan error must not end the watcher
                self.failed_scans += 1
                self._failures.log(
                    logging.ERROR,
                    "scan",
                    "catalog scan of %s failed",
                    self.media_dir,
                    exc_info=error,
                )
            await asyncio.sleep(self.poll_s)

    def _scan(self, current: dict[str, Channel]) -> tuple[dict[str, Channel], dict[str, str]]:
        found: dict[str, Channel] = {}
        problems: dict[str, str] = {}
        with os.scandir(self.media_dir) as entries:
            for entry in entries:
                if CHANNEL_PATTERN.fullmatch(entry.name) is None or not entry.is_dir():
                    continue
                channel, problem = self._load(entry.name, Path(entry.path), current.get(entry.name))
                if channel is not None:
                    found[entry.name] = channel
                if problem is not None:
                    problems[entry.name] = problem
        # forget refusals of ladders that are gone (the dict stays as small as the folder)
        self._refused = {
            path: refusal
            for path, refusal in self._refused.items()
            if path.parent.name in found or path.parent.name in problems
        }
        return found, problems

    def _load(
        self, name: str, path: Path, known: Channel | None
    ) -> tuple[Channel | None, str | None]:
        """The channel of ladder ``path`` (or its last good state) and, if refused, why."""
        manifest_path = path / MANIFEST_NAME
        try:
            status = manifest_path.stat()
        except OSError:
            return None, None  # not a ladder (yet)
        stamp = _stamp_of(status)
        if known is not None and known.stamp == stamp:
            return known, None
        refused = self._refused.get(manifest_path)
        if refused is not None and refused[0] == stamp:
            return known, refused[1]
        try:
            document = json.loads(
                read_media_file(manifest_path, self.root, limit=MAX_MANIFEST_BYTES)
            )
            manifest = Manifest.from_json(document)
            # stamped before it is read: a change while it is checked shows at the next look
            init_stamp = _stamp(path / str(manifest.init_state["file"]))
            if not _same_init_state(known, manifest, init_stamp):
                self._check_init_state(path, manifest)
        except (OSError, ValueError) as error:  # ManifestError, MediaFileError, JSON errors
            reason = f"ladder refused: {error}"
            log.warning("channel %s: %s", name, reason)
            self._refused[manifest_path] = (stamp, reason)
            return known, reason
        self._refused.pop(manifest_path, None)
        message = ManifestMessage(channel=name, manifest=document).encode()
        return (
            Channel(
                name,
                path,
                self.root,
                manifest,
                document,
                message,
                version=0,
                stamp=stamp,
                init_stamp=init_stamp,
            ),
            None,
        )

    def _check_init_state(self, path: Path, manifest: Manifest) -> None:
        """The init state the daemon will get: a regular file inside the media folder, as the
        manifest describes it and of the stream's latent shape."""
        info = manifest.init_state
        data = read_media_file(
            path / str(info["file"]),
            self.root,
            limit=MAX_INIT_STATE_BYTES,
            expected=info.get("bytes"),
        )
        try:
            verify_init_state(data, manifest)
        except ValueError as error:  # ManifestError, InitStateError
            raise ManifestError(f"{info['file']}: {error}") from None


def _same_init_state(
    known: Channel | None, manifest: Manifest, init_stamp: FileStamp | None
) -> bool:
    """True when ``known`` already checked this init state: the same unchanged file, described
    alike, for a stream of the same size (a live ladder's manifest changes far more often)."""
    return (
        known is not None
        and init_stamp is not None
        and known.init_stamp == init_stamp
        and known.manifest.init_state == manifest.init_state
        and (known.manifest.stream.width, known.manifest.stream.height)
        == (manifest.stream.width, manifest.stream.height)
    )


def extends(old: Manifest, new: Manifest) -> bool:
    """True when ``new`` keeps every chunk of ``old`` that it still lists: a live ladder that
    grew, slid its window or finished (published chunks never change in place)."""
    grown = replace(old.stream, live=new.stream.live, frames=new.stream.frames)
    if grown != new.stream or old.init_state != new.init_state:
        return False
    if new.stream.frames < old.stream.frames or new.window_start < old.window_start:
        return False
    if new.chunk_count < old.chunk_count or len(new.levels) != len(old.levels):
        return False
    kept = range(new.window_start, old.chunk_count)
    for level_id, (before, after) in enumerate(zip(old.levels, new.levels, strict=True)):
        if (before.name, before.rank, before.interval) != (after.name, after.rank, after.interval):
            return False
        if [_facts(old.chunk_info(level_id, i)) for i in kept] != [
            _facts(new.chunk_info(level_id, i)) for i in kept
        ]:
            return False
    return True


def _facts(info: ChunkInfo | None) -> tuple[int, int, int, bool] | None:
    return None if info is None else (info.index, info.bytes, info.keyframes, info.gap)


def _stamp_of(status: os.stat_result) -> FileStamp:
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def _stamp(path: Path) -> FileStamp | None:
    try:
        return _stamp_of(path.stat())
    except OSError:
        return None
