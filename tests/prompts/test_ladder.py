import json
import threading

import numpy as np
import pytest

from prompts.init_state import InitStateError, encode_init_state, parse_init_state
from prompts.ladder import Ladder, LadderWriter
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
        (lambda d: d.update(version=2), "unsupported manifest version"),
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
