"""The golden messages (tests/wire/golden/messages.json) decode and re-encode to the same bytes.

web/tests/golden.test.mjs checks the same file against the page's protocol module, so a change
on either side that the other does not follow fails one of the two.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from wire import daemon, framing, media
from wire.errors import CLOSE_CODES, ErrorCode

GOLDEN = json.loads((Path(__file__).parent / "golden" / "messages.json").read_text())

# (link, sender) -> the parser the receiving end uses
PARSERS = {
    ("media", "page"): media.parse_client_message,
    ("media", "server"): media.parse_server_message,
    ("daemon", "page"): daemon.parse_page_message,
    ("daemon", "daemon"): daemon.parse_daemon_message,
}


def _wire(entry: dict) -> str | bytes:
    return entry["text"] if entry["frame"] == "text" else base64.b64decode(entry["base64"])


@pytest.mark.parametrize(
    "entry", GOLDEN["messages"], ids=lambda e: f"{e['link']}-{e['from']}-{e['name']}"
)
def test_each_message_decodes_and_re_encodes_to_the_same_bytes(entry: dict) -> None:
    wire = _wire(entry)
    parse = PARSERS[(entry["link"], entry["from"])]
    message = parse(wire)
    assert message.TYPE == entry["name"]
    # the page's `stats` may be sent as text or binary; everything else keeps its frame kind
    assert message.encode() == wire


def test_every_message_type_of_both_links_has_an_example() -> None:
    covered = {(e["link"], e["from"], e["name"]) for e in GOLDEN["messages"]}
    for (link, sender), parse in PARSERS.items():
        module = media if link == "media" else daemon
        union = {
            "media-page": media.ClientMessage,
            "media-server": media.ServerMessage,
            "daemon-page": daemon.PageMessage,
            "daemon-daemon": daemon.DaemonMessage,
        }[f"{link}-{sender}"]
        for kind in union.__args__:
            assert (link, sender, kind.TYPE) in covered, f"no golden {kind.TYPE} on {link}"
        assert parse.__module__ == module.__name__


def test_error_codes_close_codes_and_limits_are_the_reference() -> None:
    assert GOLDEN["error_codes"] == [str(code) for code in ErrorCode]
    assert GOLDEN["close_codes"] == {str(code): close for code, close in CLOSE_CODES.items()}
    assert GOLDEN["protocol_version"] == framing.PROTOCOL_VERSION
    assert GOLDEN["limits"] == {
        "max_control_bytes": framing.MAX_CONTROL_BYTES,
        "max_header_bytes": framing.MAX_HEADER_BYTES,
        "max_manifest_message_bytes": media.MAX_MANIFEST_MESSAGE_BYTES,
        "max_chunk_payload_bytes": media.MAX_CHUNK_PAYLOAD_BYTES,
        "max_init_state_bytes": media.MAX_INIT_STATE_BYTES,
        "max_media_payload_bytes": daemon.MAX_MEDIA_PAYLOAD_BYTES,
    }


def test_the_file_is_what_the_writer_makes() -> None:
    """The golden file is current: scripts/write_protocol_golden.py would write the same."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "write_protocol_golden.py"
    spec = importlib.util.spec_from_file_location("write_protocol_golden", path)
    assert spec is not None and spec.loader is not None
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    assert writer.golden_document() == GOLDEN
