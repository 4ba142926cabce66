import json
import threading
from dataclasses import replace

import numpy as np
import pytest

from prompts.init_state import InitStateError, encode_init_state, parse_init_state
from prompts.ladder import RETIRE_GRACE_S, Ladder, LadderWriter
from prompts.manifest import Manifest, ManifestError, StreamInfo, load_manifest
from tests.prompts.factories import chunk_of

STREAM = StreamInfo(
    fps=30,
    width=64,
    height=64,
    frames=61,
    chunk_frames=20,
    generator_id="test:0",
    generator_name="test",
)


def write_ladder(path, chunks=4):
    writer = LadderWriter(path, STREAM, [("r2n10", 2, 10)])
    writer.write_init_state(np.zeros((1, 4, 8, 8), np.float32))
    for index in range(chunks):
        writer.append_chunk(
            0, chunk_of(index, rank=2, frames=61), {"psnr": 30.0 + index, "ssim": 0.9}
        )
    return writer


def test_written_ladder_reads_back(tmp_path):
    write_ladder(tmp_path).finish()
    ladder = Ladder(tmp_path)
    level = ladder.manifest.level("r2n10")
    assert ladder.manifest.chunk_count == 4 and not ladder.manifest.stream.live
    assert [c.psnr for c in level.chunks] == [30.0, 31.0, 32.0, 33.0]
    expected_kbps = sum(c.bytes for c in level.chunks) * 8 / 1000 / (61 / 30)
    assert level.kbps == pytest.approx(expected_kbps, rel=1e-3)
    assert Manifest.from_json(ladder.manifest.to_json()) == ladder.manifest


def test_live_ladder_never_announces_a_missing_chunk(tmp_path):
    writer = LadderWriter(tmp_path, STREAM, [("r2n10", 2, 10)])
    writer.write_init_state(np.zeros((1, 4, 8, 8), np.float32))
    stop = threading.Event()
    problems = []

    def reader():
        while not stop.wait(0.002):
            try:
                manifest = load_manifest(tmp_path)
            except ManifestError as error:  # a half-written manifest would land here
                problems.append(str(error))
                continue
            for c in manifest.levels[0].chunks:
                if not (tmp_path / "r2n10" / f"{c.index:05d}.chunk").exists():
                    problems.append(f"chunk {c.index} announced before written")

    thread = threading.Thread(target=reader)
    thread.start()
    for index in range(4):
        writer.append_chunk(0, chunk_of(index, rank=2, frames=61))
    stop.set()
    thread.join()
    assert problems == []
    assert load_manifest(tmp_path).stream.live


def test_writer_refuses_out_of_order_or_foreign_chunks(tmp_path):
    writer = LadderWriter(tmp_path, STREAM, [("r2n10", 2, 10)])
    with pytest.raises(ValueError, match="expected chunk 0"):
        writer.append_chunk(0, chunk_of(1, rank=2, frames=61))
    with pytest.raises(ValueError, match="does not belong"):
        writer.append_chunk(0, chunk_of(0, rank=3, frames=61))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=3), "unsupported manifest version"),
        (lambda d: d.update(window_start=2), "window_start=2 outside"),
        (lambda d: d.update(window_start=1), "chunk indices must be 1..n-1"),
        (lambda d: d["levels"][0]["chunks"][0].update(gap=True), "bytes=.* outside 0..0"),
        (lambda d: d.update(fps="30"), "fps must be a finite number"),
        (lambda d: d.update(frames=0), "frames=0 outside"),
        (lambda d: d["levels"][0].update(name="../etc"), "not a safe directory name"),
        (lambda d: d["levels"][0].update(interval=7), "not a multiple of interval"),
        (lambda d: d.update(prev_latent_rule="magic"), "prev_latent_rule"),
        (lambda d: d.update(levels=[]), "at least one level"),
        (lambda d: d.update(chunk_count=99), "chunk_count=99 outside"),
    ],
)
def test_manifest_validation_names_the_field(tmp_path, change, message):
    write_ladder(tmp_path, chunks=1)
    document = json.loads((tmp_path / "manifest.json").read_text())
    change(document)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(document)


def test_version_1_manifests_still_read(tmp_path):
    write_ladder(tmp_path, chunks=2).finish()
    document = json.loads((tmp_path / "manifest.json").read_text())
    assert document["version"] == 2 and document["window_start"] == 0
    del document["window_start"]
    document["version"] = 1
    old = Manifest.from_json(document)
    assert old.window_start == 0 and old == load_manifest(tmp_path)


def test_live_window_slides_and_removes_files_after_a_grace(tmp_path):
    now = [0.0]
    stream = replace(STREAM, frames=20)
    writer = LadderWriter(tmp_path, stream, [("r2n10", 2, 10)], clock=lambda: now[0])
    writer.write_init_state(np.zeros((1, 4, 8, 8), np.float32))
    for index in range(6):
        writer.grow(20 * (index + 1))
        writer.append_chunk(0, chunk_of(index, rank=2, frames=20 * (index + 1)))
    writer.slide_window(3)
    manifest = load_manifest(tmp_path)
    assert (manifest.window_start, manifest.chunk_count) == (3, 6)
    assert [c.index for c in manifest.levels[0].chunks] == [3, 4, 5]
    assert manifest.chunk_info(0, 2) is None and manifest.chunk_info(0, 3).index == 3
    files = lambda: sorted(int(p.stem) for p in (tmp_path / "r2n10").glob("*.chunk"))  # noqa: E731
    assert files() == [0, 1, 2, 3, 4, 5]  # still named by the manifest viewers read a moment ago
    now[0] = RETIRE_GRACE_S + 1
    writer.remove_retired()
    assert files() == [2, 3, 4, 5]  # chunk 2 serves the switch prefix of chunk 3
    writer.slide_window(5)
    now[0] += RETIRE_GRACE_S + 1
    writer.remove_retired()
    assert files() == [4, 5]
    with pytest.raises(ValueError, match="window start 2 outside"):
        writer.slide_window(2)


def test_gap_chunks_have_no_file_and_do_not_count_in_the_rate(tmp_path):
    writer = LadderWriter(tmp_path, STREAM, [("r2n10", 2, 10), ("r4n10", 4, 10)])
    writer.write_init_state(np.zeros((1, 4, 8, 8), np.float32))
    writer.append_chunk(0, chunk_of(0, rank=2, frames=61))
    writer.append_gap(1, 0)
    writer.append_gap(0, 1)
    manifest = load_manifest(tmp_path)
    assert manifest.chunk_count == 1  # level 1 has chunk 0 (a gap); level 0 has 0 and 1
    gap = manifest.chunk_info(1, 0)
    assert gap.gap and gap.bytes == 0 and not (tmp_path / "r4n10" / "00000.chunk").exists()
    assert manifest.levels[1].kbps == 0.0 and manifest.levels[0].kbps > 0
    assert Manifest.from_json(manifest.to_json()) == manifest
    writer.finish()
    with pytest.raises(ValueError, match="only a live ladder"):
        writer.append_gap(1, 1)


def test_manifest_that_is_not_json(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path)


def test_init_state_round_trip_and_defects():
    latent = np.random.RandomState(0).randn(1, 4, 8, 8).astype(np.float32)
    assert np.array_equal(parse_init_state(encode_init_state(latent)), latent)
    half = parse_init_state(encode_init_state(latent, dtype="float16"))
    np.testing.assert_allclose(half, latent, atol=2e-3)
    data = encode_init_state(latent)
    with pytest.raises(InitStateError, match="truncated"):
        parse_init_state(data[:-1])
    with pytest.raises(InitStateError, match="bad magic"):
        parse_init_state(b"NOPE" + data[4:])
    flipped = bytearray(data)
    flipped[-8] ^= 1
    with pytest.raises(InitStateError, match="checksum mismatch"):
        parse_init_state(bytes(flipped))
