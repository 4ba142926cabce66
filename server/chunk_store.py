"""Ready-to-send chunk messages, read from disk in worker threads and kept in a bounded cache.

The cache holds *encoded wire messages* (header + optional switch prefix + chunk), so a
chunk that many viewers fetch costs one disk read and one encoding, then only a lookup.
Concurrent requests for the same message share one read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

from common.errors import UserError
from common.log_throttle import DEFAULT_INTERVAL_S, LogThrottle
from prompts.chunk import MAX_CHUNK_BYTES, encode_chunk, is_closed_chunk, make_prefix, parse_chunk
from prompts.init_state import MAX_INIT_STATE_BYTES
from prompts.ladder import chunk_relpath
from prompts.manifest import ChunkInfo
from server.catalog import Channel
from server.media_files import MediaFileError, read_media_file
from wire.errors import ErrorCode, ProtocolError
from wire.media import InitStateMessage, encode_chunk_message

log = logging.getLogger(__name__)

# (channel, its content generation, level, chunk index, with prefix)
ChunkKey = tuple[str, int, int, int, bool]


class ChunkReadError(UserError):
    """A chunk file the manifest announces is missing, of the wrong size or unparsable."""


class PrefixGapError(UserError):
    """The switch prefix of a chunk would be the last keyframe of a chunk that is a gap."""


class ChunkStore:
    """Builds `chunk` and `init_state` messages; an LRU of at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int, log_interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.max_bytes = max_bytes
        self.cached_bytes = 0
        self.hits = 0
        self.misses = 0
        self.reads = 0  # builds started (concurrent misses of one key share one)
        self._cache: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._pending: dict[tuple[object, ...], asyncio.Future[bytes]] = {}
        # a broken file asked for many times a second logs one line per channel per interval
        self._failures = LogThrottle(log, log_interval_s)
        self.unreadable = 0  # requests refused because a ladder file could not be read

    def unreadable_media(self, channel: Channel, error: ChunkReadError) -> ProtocolError:
        """Count and log (one line per channel per interval) a file that could not be read; the
        error to send."""
        self.unreadable += 1
        self._failures.log(logging.ERROR, channel.name, "channel %s: %s", channel.name, error)
        return ProtocolError(ErrorCode.MEDIA_UNREADABLE, f"channel {channel.name}: {error}")

    async def chunk_message(self, channel: Channel, level: int, index: int, prefix: bool) -> bytes:
        """The `chunk` message for chunk ``index`` of ``level`` (+ switch prefix if asked and j > 0).

        The caller checks that ``level`` and ``index`` exist in the channel's manifest (inside
        its window, not a gap).
        """
        info = channel.manifest.levels[level]
        cell = channel.manifest.chunk_info(level, index)
        assert cell is not None and not cell.gap
        with_prefix = prefix and index > 0
        key: ChunkKey = (channel.name, channel.content, level, index, with_prefix)
        return await self._get(
            key,
            lambda: _build_chunk_message(
                channel,
                info.name,
                level,
                index,
                cell.bytes,
                channel.manifest.chunk_info(level, index - 1) if with_prefix else None,
                with_prefix,
            ),
        )

    async def init_state_message(self, channel: Channel) -> bytes:
        """The `init_state` message of a channel."""
        key = ("init", channel.name, channel.content)
        file_name = str(channel.manifest.init_state["file"])
        return await self._get(key, lambda: _build_init_state_message(channel, file_name))

    async def _get(self, key: tuple[object, ...], build: Callable[[], bytes]) -> bytes:
        message = self._cache.get(key)
        if message is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return message
        self.misses += 1
        pending = self._pending.get(key)
        if pending is None:
            self.reads += 1
            pending = asyncio.ensure_future(asyncio.to_thread(build))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        # shield: a viewer that disconnects mid-read must not cancel the read others wait for
        return await asyncio.shield(pending)

    def _settle(self, key: tuple[object, ...], done: asyncio.Future[bytes]) -> None:
        del self._pending[key]
        if done.cancelled() or done.exception() is not None:
            return
        message = done.result()
        if len(message) > self.max_bytes // 2:
            return  # one huge message must not flush the whole cache
        self._cache[key] = message
        self.cached_bytes += len(message)
        while self.cached_bytes > self.max_bytes:
            _, evicted = self._cache.popitem(last=False)
            self.cached_bytes -= len(evicted)


def _read_chunk(channel: Channel, level_name: str, index: int, expected: int | None) -> bytes:
    """A chunk file of exactly ``expected`` bytes (when the manifest still lists it), else of
    at most the chunk format's limit."""
    path = channel.path / chunk_relpath(level_name, index)
    try:
        return read_media_file(path, channel.root, limit=MAX_CHUNK_BYTES, expected=expected)
    except MediaFileError as error:
        raise ChunkReadError(f"chunk {index} of level {level_name}: {error}") from None


def _build_chunk_message(
    channel: Channel,
    level_name: str,
    level: int,
    index: int,
    expected: int,
    previous: ChunkInfo | None,
    with_prefix: bool,
) -> bytes:
    """The `chunk` message; with the switch prefix (the last keyframe of chunk ``index - 1``,
    whose manifest entry is ``previous``) when asked and the chunk is not closed. A chunk that
    slid out of a live window is no longer listed; its file stays a while for this prefix."""
    data = _read_chunk(channel, level_name, index, expected)
    prefix = b""
    if with_prefix and not is_closed_chunk(data):  # a closed chunk holds its own keyframe
        if previous is not None and previous.gap:
            raise PrefixGapError(
                f"chunk {index} of level {level} cannot follow a level switch or a seek: its "
                f"switch prefix would be the last keyframe of chunk {index - 1}, a gap in this "
                "live channel; take another level or skip it"
            )
        size = previous.bytes if previous is not None else None
        data_before = _read_chunk(channel, level_name, index - 1, size)
        try:
            prefix = encode_chunk(make_prefix(parse_chunk(data_before)))
        except ValueError as error:  # ChunkFormatError is a ValueError
            raise ChunkReadError(
                f"switch prefix of chunk {index} (level {level_name}): {error}"
            ) from None
    return encode_chunk_message(channel.name, level, index, data, prefix)


def _build_init_state_message(channel: Channel, file_name: str) -> bytes:
    try:
        data = read_media_file(channel.path / file_name, channel.root, limit=MAX_INIT_STATE_BYTES)
    except MediaFileError as error:
        raise ChunkReadError(f"init state: {error}") from None
    return InitStateMessage(channel=channel.name, data=data).encode()
