"""The catalog: which directories are channels, change detection, broken manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from prompts.manifest import Manifest
from server.catalog import Catalog
from tests.server.conftest import append_chunk, write_ladder


async def test_only_ladder_directories_with_valid_names_are_channels(media: Path) -> None:
    shutil.copytree(media / "sky", media / ".hidden")
    shutil.copytree(media / "sky", media / "bad name")
    (media / "empty").mkdir()
    (media / "file.txt").write_text("x")
    catalog = Catalog(media, poll_s=1)
    await catalog.refresh()
    assert [channel.name for channel in catalog.channels()] == ["sky"]
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


async def test_init_state_is_checked_again_only_when_it_may_differ(
    media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = write_ladder(media / "live", chunks=1, finish=False)
    catalog = Catalog(media, poll_s=1)
    checked: list[str] = []
    check = Catalog._check_init_state

    def counting(self: Catalog, path: Path, manifest: Manifest) -> None:
        if path.name == "live":
            checked.append(path.name)
        check(self, path, manifest)

    monkeypatch.setattr(Catalog, "_check_init_state", counting)
    await catalog.refresh()
    append_chunk(writer, 1)  # the manifest changes, init.bin does not
    await catalog.refresh()
    assert checked == ["live"]
    init = media / "live" / str(writer.manifest.init_state["file"])
    copy = init.with_name("init.copy")
    copy.write_bytes(init.read_bytes())
    copy.replace(init)  # the same bytes in a new file (another inode): checked again
    append_chunk(writer, 2)
    await catalog.refresh()
    assert checked == ["live", "live"]
