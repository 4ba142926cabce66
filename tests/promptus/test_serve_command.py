"""`promptus serve` over a folder that holds no ladder: said, with the ladders further down."""

from __future__ import annotations

import re
from pathlib import Path

from common.ports import free_port, port_free
from common.processes import Child, promptus_command
from promptus.commands.serve import missing_ladders_note


def write_manifests(root: Path, *ladders: str) -> None:
    for ladder in ladders:
        (root / ladder).mkdir(parents=True)
        (root / ladder / "manifest.json").write_text("{}")


def test_a_media_folder_one_level_too_high_names_the_ladders_below(tmp_path: Path) -> None:
    assert "none is below it either" in str(missing_ladders_note(tmp_path))
    write_manifests(tmp_path, "nano/media/demo", "tiny/media/demo")
    note = missing_ladders_note(tmp_path)
    assert note is not None and note.startswith(f"no ladder in {tmp_path}: a channel is")
    assert f"Ladders below it: {tmp_path}/nano/media/demo, {tmp_path}/tiny/media/demo;" in note
    assert note.endswith(f"promptus serve --media {tmp_path}/nano/media")
    assert missing_ladders_note(tmp_path / "nano" / "media") is None  # the right folder


def test_the_server_log_says_so(tmp_path: Path) -> None:
    write_manifests(tmp_path, "nano/media/demo")
    port = free_port()
    argv = ["serve", "--media", str(tmp_path), "--port", str(port), "--telemetry", "off"]
    server = Child("serve", promptus_command(*argv))
    try:
        line = server.wait_for_line(re.compile(r"WARNING no ladder in "), 60).string
        assert f"promptus serve --media {tmp_path}/nano/media" in line, line
    finally:
        server.stop()
    assert port_free("127.0.0.1", port)
