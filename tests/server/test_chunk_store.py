"""The chunk store: wire messages built off the loop, shared reads, a bounded LRU cache."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from prompts.ladder import Ladder
from server.catalog import Catalog, Channel
from server.chunk_store import ChunkReadError, ChunkStore
from tests.server.conftest import STREAM
from wire.media import ChunkMessage, InitStateMessage, parse_server_message


async def sky(media: Path) -> Channel:
    catalog = Catalog(media, poll_s=1)
    await catalog.refresh()
    channel = catalog.get("sky")
    assert channel is not None
    return channel


async def test_concurrent_requests_share_one_read(media: Path) -> None:
    channel, store = await sky(media), ChunkStore(max_bytes=10**7)
    messages = await asyncio.gather(*(store.chunk_message(channel, 0, 1, False) for _ in range(20)))
    assert store.reads == 1 and len(set(messages)) == 1
    parsed = parse_server_message(messages[0])
    assert isinstance(parsed, ChunkMessage) and parsed.data == Ladder(media / "sky").chunk_bytes(
        0, 1
    )
    await store.chunk_message(channel, 0, 1, False)
    assert store.reads == 1 and store.hits == 1


async def test_cache_stays_within_its_bound(media: Path) -> None:
    channel = await sky(media)
    keys = [(level, index) for index in range(STREAM.chunk_count) for level in (0, 1)]
    sizes = {key: len(await ChunkStore(10**7).chunk_message(channel, *key, False)) for key in keys}
    store = ChunkStore(max_bytes=int(2.5 * max(sizes.values())))
    assert sum(sizes.values()) > store.max_bytes  # so something must be evicted
    for key in keys:
        await store.chunk_message(channel, *key, False)
        assert store.cached_bytes <= store.max_bytes
    reads = store.reads
    await store.chunk_message(channel, *keys[-1], False)  # the newest is still cached
    assert store.reads == reads
    await store.chunk_message(channel, *keys[0], False)  # the oldest was evicted
    assert store.reads == reads + 1


async def test_wrong_size_and_missing_files_are_errors(media: Path) -> None:
    channel, store = await sky(media), ChunkStore(max_bytes=10**7)
    path = media / "sky" / "r2n10" / "00001.chunk"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ChunkReadError, match=r"has \d+ bytes, expected \d+ bytes"):
        await store.chunk_message(channel, 0, 1, False)
    (media / "sky" / "r2n10" / "00000.chunk").unlink()
    with pytest.raises(ChunkReadError, match="cannot open"):
        await store.chunk_message(channel, 0, 0, False)
    with pytest.raises(ChunkReadError, match="chunk 1 of level r2n10: .* expected"):
        await store.chunk_message(channel, 0, 2, True)  # needs chunk 1, which is corrupt
    assert store.cached_bytes == 0


async def test_init_state_message_and_escape(media: Path) -> None:
    channel, store = await sky(media), ChunkStore(max_bytes=10**7)
    parsed = parse_server_message(await store.init_state_message(channel))
    assert (
        isinstance(parsed, InitStateMessage)
        and parsed.data == (media / "sky" / "init.bin").read_bytes()
    )
    manifest = replace(channel.manifest, init_state={"file": "../../etc/passwd"})
    escaping = replace(channel, manifest=manifest, content=channel.content + 1)
    with pytest.raises(ChunkReadError, match="outside the media folder"):
        await store.init_state_message(escaping)
