"""The catalog: which directories are channels, change detection, broken manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from server.catalog import Catalog
from tests.server.conftest import append_chunk, write_ladder


async def test_only_ladder_directories_with_valid_names_are_channels(media: Path) -> None:
    shutil.copytree(media / "sky", media / ".hidden")
    shutil.copytree(media / "sky", media / "bad name")
    (media / "empty").mkdir()
    (media / "file.txt").write_text("x")
    catalog = Catalog(media, poll_s=1)
    await catalog.refresh()
    assert catalog.names() == ["sky"]
    sky = catalog.get("sky")
    assert sky is not None and sky.chunk_count == 4 and not sky.live
    assert json.loads(sky.message)["manifest"] == sky.document


async def test_versions_change_only_with_the_manifest(media: Path) -> None:
    writer = write_ladder(media / "live", chunks=1, finish=False)
    catalog = Catalog(media, poll_s=1)
    await catalog.refresh()
    first = catalog.get("live")
    await catalog.refresh()
    assert catalog.get("live") is first  # untouched file: same object, same version
    append_chunk(writer, 1)
    await catalog.refresh()
    second = catalog.get("live")
    assert second is not None and first is not None
    assert second.version > first.version and second.chunk_count == 2 and second.live


async def test_broken_manifest_keeps_last_good_state(media: Path) -> None:
    catalog = Catalog(media, poll_s=1)
    await catalog.refresh()
    good = catalog.get("sky")
    (media / "sky" / "manifest.json").write_text('{"format": "promptus-ladder", "version": 1}')
    await catalog.refresh()
    assert catalog.get("sky") is good
    shutil.copytree(media / "sky", media / "broken")
    await catalog.refresh()
    assert catalog.get("broken") is None


async def test_removed_channel_disappears(media: Path) -> None:
    catalog = Catalog(media, poll_s=1)
    await catalog.refresh()
    shutil.rmtree(media / "sky")
    await catalog.refresh()
    assert catalog.get("sky") is None and len(catalog) == 0


async def test_content_generation_survives_growth_but_not_a_rewrite(media: Path) -> None:
    writer = write_ladder(media / "live", chunks=1, finish=False)
    catalog = Catalog(media, poll_s=1)
    await catalog.refresh()
    first = catalog.get("live")
    append_chunk(writer, 1)
    writer.finish()
    await catalog.refresh()
    grown = catalog.get("live")
    assert first is not None and grown is not None
    assert grown.version > first.version and grown.content == first.content  # caches stay valid
    shutil.rmtree(media / "live")
    write_ladder(media / "live", chunks=2)  # rewritten in place: same sizes, maybe other bytes
    await catalog.refresh()
    rewritten = catalog.get("live")
    assert rewritten is not None and rewritten.content != grown.content
