"""Issue 13, row 6: writers refuse to clobber, write atomically and readable, never through a
link; ``inspect`` checks every file the manifest names. Each test failed before the issue."""

from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path

import pytest

from promptus.cli import main


def import_legacy(source: Path, out: Path, *extra: str) -> int:
    return main(["import-legacy", str(source), "--out", str(out), *extra])


def modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_row6_import_legacy_refuses_to_clobber_and_writes_files_0644(
    legacy_prompts_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sky"
    out.mkdir()
    (out / "notes.txt").write_text("someone's file")
    assert import_legacy(legacy_prompts_dir, out) == 2
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # untouched

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "r8n10").symlink_to(elsewhere, target_is_directory=True)  # a symlinked level folder
    assert import_legacy(legacy_prompts_dir, out, "--force") == 0
    assert not (out / "notes.txt").exists()  # no stale file survives
    assert not (out / "r8n10").is_symlink() and list(elsewhere.iterdir()) == []
    assert modes(out) == {0o644}
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers

    link = tmp_path / "link"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert import_legacy(legacy_prompts_dir, link, "--force") == 2
    assert "is a symlink" in capsys.readouterr().err and list(elsewhere.iterdir()) == []


def test_row6_inspect_verifies_init_bin_against_the_manifest(
    legacy_prompts_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sky"
    assert import_legacy(legacy_prompts_dir, out) == 0
    assert main(["inspect", str(out)]) == 0
    init = out / "init.bin"
    data = bytearray(init.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, other bytes: its CRC no longer matches either
    init.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 2
    error = capsys.readouterr().err
    assert "init.bin: sha256" in error and hashlib.sha256(data).hexdigest() in error
    shutil.copy(out / "r8n10" / "00000.chunk", out / "r8n10" / "00001.chunk")  # a wrong size
    init.write_bytes(bytes(data[: len(data) // 2]))
    assert main(["inspect", str(out)]) == 2
    assert "bytes, the manifest says" in capsys.readouterr().err
