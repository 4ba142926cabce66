"""Issue 13, row 7: the documentation says what the code does (codes that are sent, limits)."""

from __future__ import annotations

import re
from pathlib import Path

from wire.daemon import MAX_FRAME_DAEMON_RECEIVES
from wire.errors import ErrorCode

REPO = Path(__file__).resolve().parents[1]


def source_of(*packages: str) -> str:
    return "\n".join(
        path.read_text()
        for package in packages
        for path in sorted((REPO / package).rglob("*.py"))
        if path != REPO / "wire" / "errors.py"  # where the codes are defined, not sent
    )


def test_every_documented_error_code_is_sent_by_the_server_or_the_daemon() -> None:
    documented = set(
        re.findall(
            r"^\| `([a-z_]+)` \| (?:A|B|A, B) \|", (REPO / "docs/protocol.md").read_text(), re.M
        )
    )
    assert documented == {str(code) for code in ErrorCode}
    sent = source_of("server", "client_daemon", "wire")
    never = [code.name for code in ErrorCode if f"ErrorCode.{code.name}" not in sent]
    assert never == [], f"documented but never sent: {never}"


def test_the_daemon_doc_states_its_frame_limit() -> None:
    text = (REPO / "docs/daemon.md").read_text()
    assert f"{MAX_FRAME_DAEMON_RECEIVES:,} bytes" in text
