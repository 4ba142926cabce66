"""The catalog of channels: one ladder directory per channel under the media folder.

It re-scans the folder every few hundred milliseconds (off the event loop), so new
channels and new chunks of live ladders appear without a restart. A manifest is re-read
only when its file changed; a manifest that fails validation is logged and the channel
keeps its last good state (ladder writers replace manifests atomically, so this only
happens when someone writes a broken one by hand).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prompts.ladder import MANIFEST_NAME
from prompts.manifest import MAX_MANIFEST_BYTES, ChunkInfo, Manifest, ManifestError
from wire.media import CHANNEL_PATTERN, ManifestMessage

log = logging.getLogger(__name__)

FileStamp = tuple[int, int, int]  # (mtime_ns, size, inode) of manifest.json


@dataclass(frozen=True)
class Channel:
    """One published ladder as the server currently sees it."""

    name: str
    path: Path
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

    def __init__(self, media_dir: Path, poll_s: float) -> None:
        self.media_dir = Path(media_dir)
        self.poll_s = poll_s
        self._channels: dict[str, Channel] = {}
        self._versions = 0
        self.scans = 0  # completed scans of the folder
        self._lock = asyncio.Lock()
        self._refused: dict[Path, FileStamp] = {}  # manifests already logged as invalid

    def get(self, name: str) -> Channel | None:
        """The channel ``name`` as of the last refresh."""
        return self._channels.get(name)

    def names(self) -> list[str]:
        return sorted(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    async def refresh(self) -> None:
        """Re-scan the media folder in a worker thread and publish the result."""
        async with self._lock:
            current = dict(self._channels)
            scanned = await asyncio.to_thread(self._scan, current)
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
            self.scans += 1

    async def watch(self) -> None:
        """Refresh forever; one failed scan is logged and the next one tried."""
        while True:
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - a scan error must not end the watcher
                log.exception("catalog scan of %s failed", self.media_dir)
            await asyncio.sleep(self.poll_s)

    def _scan(self, current: dict[str, Channel]) -> dict[str, Channel]:
        found: dict[str, Channel] = {}
        with os.scandir(self.media_dir) as entries:
            for entry in entries:
                if CHANNEL_PATTERN.fullmatch(entry.name) is None or not entry.is_dir():
                    continue
                channel = self._load(entry.name, Path(entry.path), current.get(entry.name))
                if channel is not None:
                    found[entry.name] = channel
        return found

    def _load(self, name: str, path: Path, known: Channel | None) -> Channel | None:
        manifest_path = path / MANIFEST_NAME
        try:
            status = manifest_path.stat()
        except OSError:
            return None  # not a ladder (yet)
        stamp = _stamp_of(status)
        if known is not None and known.stamp == stamp:
            return known
        if self._refused.get(manifest_path) == stamp:
            return known
        try:
            if status.st_size > MAX_MANIFEST_BYTES:
                raise ManifestError(
                    f"manifest of {status.st_size} bytes is over {MAX_MANIFEST_BYTES}"
                )
            document = json.loads(manifest_path.read_bytes())
            manifest = Manifest.from_json(document)
        except (OSError, ValueError) as error:  # ManifestError and JSON errors are ValueErrors
            log.warning("channel %s: manifest refused: %s", name, error)
            self._refused[manifest_path] = stamp
            return known
        message = ManifestMessage(channel=name, manifest=document).encode()
        return Channel(
            name,
            path,
            manifest,
            document,
            message,
            version=0,
            stamp=stamp,
            init_stamp=_stamp(path / str(manifest.init_state["file"])),
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
