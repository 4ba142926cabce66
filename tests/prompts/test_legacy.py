import functools
import json
import shutil
import subprocess
import sys

import pytest
import torch

from prompts.chunk import parse_chunk
from prompts.ladder import Ladder
from prompts.legacy import LegacyImportError, import_legacy, read_legacy_folder

PROMPTUS = [sys.executable, "-m", "promptus"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory, request):
    from tests.conftest import shared_path

    source = shared_path("media/sky-legacy-prompts/rank8_interval10")
    out = tmp_path_factory.mktemp("legacy") / "sky"
    import_legacy(source, out)
    return source, out


def test_import_gives_fifteen_keyframes_rank_8_interval_10(imported):
    _, out = imported
    ladder = Ladder(out)
    stream, (level,) = ladder.manifest.stream, ladder.manifest.levels
    assert (
        stream.frames,
        stream.noise_seed,
        stream.prev_latent_weight,
        stream.prev_latent_rule,
    ) == (141, 88, 0.05, "chained")
    assert stream.generator_name == "sd-turbo + taesd"
    assert (level.rank, level.interval, sum(c.keyframes for c in level.chunks)) == (8, 10, 15)
    assert ladder.init_state().shape == (1, 4, 64, 64)


def test_dequantized_factors_equal_the_original_code_bit_for_bit(imported):
    source, out = imported
    ladder = Ladder(out)
    keyframes = [
        k
        for c in ladder.manifest.levels[0].chunks
        for k in parse_chunk(ladder.chunk_bytes(0, c.index)).keyframes
    ]
    load = functools.partial(torch.load, weights_only=True, map_location="cpu")
    for keyframe in keyframes:
        original = load(source / f"frame_{keyframe.frame:05d}.prompt")
        for name, ours in (("U", keyframe.u), ("V", keyframe.v)):
            # what the original release computes: scale * (q - zero_point), float32
            expected = original[f"{name}_scale"] * (
                original[name].float() - original[f"{name}_zero_point"]
            )
            assert torch.equal(torch.from_numpy(ours.dequantize()), expected)
    init = load(source / "init.pth")
    assert torch.equal(torch.from_numpy(ladder.init_state()), init.float())


def test_compression_counts_every_byte_of_the_chunks(imported):
    _, out = imported
    raw = 15 * (77 * 8 + 8 * 1024)
    coded = sum(p.stat().st_size for p in (out / "r8n10").glob("*.chunk"))
    assert raw / coded >= 1.12, f"ratio {raw / coded:.4f}"


def test_inspect_cli_reports_the_ladder(imported):
    _, out = imported
    result = subprocess.run(
        [*PROMPTUS, "inspect", str(out), "--json"], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert (report["keyframes"], report["rank"], report["interval"]) == (15, 8, 10)
    assert report["raw_bytes"] == 132120
    assert report["coded_bytes"] == sum(p.stat().st_size for p in (out / "r8n10").glob("*.chunk"))
    assert report["raw_bytes"] / report["coded_bytes"] >= 1.12


def test_inspect_on_a_corrupt_copy_exits_2_with_one_line(imported, tmp_path):
    _, out = imported
    copy = tmp_path / "corrupt"
    shutil.copytree(out, copy)
    chunk = copy / "r8n10" / "00001.chunk"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    result = subprocess.run([*PROMPTUS, "inspect", str(copy)], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "checksum mismatch" in lines[0] and "00001.chunk" in lines[0]
    assert "Traceback" not in result.stderr


def test_import_cli_refuses_a_bad_folder(tmp_path):
    result = subprocess.run(
        [*PROMPTUS, "import-legacy", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "need at least two frame_*.prompt" in result.stderr


def test_unsafe_or_malformed_prompt_files_are_refused(tmp_path, legacy_prompts_dir):
    for name in ("frame_00000.prompt", "frame_00010.prompt"):
        shutil.copy(legacy_prompts_dir / name, tmp_path / name)
    shutil.copy(legacy_prompts_dir / "init.pth", tmp_path / "init.pth")
    (tmp_path / "frame_00010.prompt").write_bytes(b"\x80\x04not a pickle of tensors")
    with pytest.raises(LegacyImportError, match="frame_00010.prompt: not a loadable tensor file"):
        read_legacy_folder(tmp_path)
    torch.save(
        {"U": torch.zeros(77, 8), "V": torch.zeros(8, 1024, dtype=torch.uint8)},
        tmp_path / "frame_00010.prompt",
    )
    with pytest.raises(LegacyImportError, match="U must be a 2-D uint8 tensor"):
        read_legacy_folder(tmp_path)
