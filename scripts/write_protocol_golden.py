"""Write tests/wire/golden/messages.json: one encoded example of every message of both links, every
error code, the close codes and the limits, from the Python reference (``wire/``).

The Python tests (tests/wire/test_golden.py) and the Node tests (web/tests/golden.test.mjs) both
decode and re-encode these bytes, so a drift on either side fails. Run this only when the
protocol changes on purpose (and bump PROTOCOL_VERSION when old peers cannot follow):

    .venv/bin/python scripts/write_protocol_golden.py
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from prompts.stream_model import CHUNK_RESET, NOISE_SEED, PREV_LATENT_WEIGHT
from wire.daemon import (
    MAX_MEDIA_PAYLOAD_BYTES,
    InitSegment,
    MediaSegment,
    Open,
    Seek,
    Status,
    StreamSetup,
)
from wire.errors import CLOSE_CODES, ErrorCode
from wire.framing import MAX_CONTROL_BYTES, MAX_HEADER_BYTES, PROTOCOL_VERSION, ErrorMessage
from wire.media import (
    MAX_CHUNK_PAYLOAD_BYTES,
    MAX_INIT_STATE_BYTES,
    MAX_MANIFEST_MESSAGE_BYTES,
    Ack,
    ChunkMessage,
    Get,
    Hello,
    InitStateMessage,
    ManifestMessage,
    Stats,
)

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "wire" / "golden" / "messages.json"

SETUP = StreamSetup(
    generator_id="tiny:cf453d3083e17c42",
    width=192,
    height=128,
    fps=29.97,
    noise_seed=NOISE_SEED,
    prev_latent_weight=PREV_LATENT_WEIGHT,
    prev_latent_rule=CHUNK_RESET,
    chunk_frames=60,
)
MANIFEST = {
    "format": "promptus-ladder",
    "version": 2,
    "fps": 29.97,
    "width": 192,
    "height": 128,
    "frames": 150,
    "chunk_frames": 60,
    "chunk_count": 3,
    "window_start": 0,
    "live": False,
    "generator": {"id": "tiny:cf453d3083e17c42", "name": "tiny"},
    "noise_seed": NOISE_SEED,
    "prev_latent_weight": PREV_LATENT_WEIGHT,
    "prev_latent_rule": CHUNK_RESET,
    "levels": [{"id": 0, "name": "r2n10", "rank": 2, "interval": 10, "kbps": 42.5, "chunks": []}],
}


def _examples() -> list[tuple[str, str, str, Any]]:
    """(name, link, sender, message) for every message type, with every optional field used."""
    payload = bytes(range(7))
    return [
        ("hello", "media", "page", Hello(channel="sky", abr="mpc", user_agent="golden")),
        ("get", "media", "page", Get(chunk=4, level=2, prefix=True)),
        ("ack", "media", "page", Ack(chunk=4, level=2)),
        (
            "stats",
            "media",
            "page",
            Stats(
                buffer_s=3.5,
                stalls=1,
                stall_s=0.25,
                level=2,
                throughput_kbps=1234.5,
                daemon_fps=61.5,
                event="rebuffer",
                behind_live_s=2.5,
                extra={"position_s": 12.5},
            ),
        ),  # fmt: skip
        ("manifest", "media", "server", ManifestMessage(channel="sky", manifest=MANIFEST)),
        (
            "error",
            "media",
            "server",
            ErrorMessage(
                code=ErrorCode.UNKNOWN_CHUNK, message="chunk 9 is past the end", chunk=9, level=0
            ),
        ),  # fmt: skip
        (
            "chunk",
            "media",
            "server",
            ChunkMessage(channel="sky", level=1, chunk=3, data=payload, prefix=b"\x01\x02"),
        ),  # fmt: skip
        ("init_state", "media", "server", InitStateMessage(channel="sky", data=payload)),
        ("open", "daemon", "page", Open(stream=SETUP, init_state=payload, session="page-1")),
        ("chunk", "daemon", "page", ChunkMessage(channel="sky", level=1, chunk=3, data=payload)),
        ("seek", "daemon", "page", Seek(chunk=12)),
        (
            "init",
            "daemon",
            "daemon",
            InitSegment(mime='video/mp4; codecs="avc1.64001e"', data=payload),
        ),
        (
            "segment",
            "daemon",
            "daemon",
            MediaSegment(
                level=1,
                chunk=3,
                part=0,
                parts=6,
                frames=10,
                generation_ms=30.5,
                encode_ms=12.25,
                data=payload,
            ),
        ),  # fmt: skip
        (
            "status",
            "daemon",
            "daemon",
            Status(fps=312.5, queue_depth=2, device="cpu", generator_id="tiny:cf453d3083e17c42"),
        ),  # fmt: skip
        (
            "error",
            "daemon",
            "daemon",
            ErrorMessage(
                code=ErrorCode.GENERATOR_MISMATCH, message="stream was made for another generator"
            ),
        ),  # fmt: skip
    ]


def golden_document() -> dict[str, Any]:
    messages = []
    for name, link, sender, message in _examples():
        wire = message.encode()
        entry: dict[str, Any] = {"name": name, "link": link, "from": sender}
        if isinstance(wire, str):
            entry.update(frame="text", text=wire)
        else:
            entry.update(frame="binary", base64=base64.b64encode(wire).decode("ascii"))
        messages.append(entry)
    return {
        "protocol_version": PROTOCOL_VERSION,
        "error_codes": [str(code) for code in ErrorCode],
        "close_codes": {str(code): close for code, close in CLOSE_CODES.items()},
        "limits": {
            "max_control_bytes": MAX_CONTROL_BYTES,
            "max_header_bytes": MAX_HEADER_BYTES,
            "max_manifest_message_bytes": MAX_MANIFEST_MESSAGE_BYTES,
            "max_chunk_payload_bytes": MAX_CHUNK_PAYLOAD_BYTES,
            "max_init_state_bytes": MAX_INIT_STATE_BYTES,
            "max_media_payload_bytes": MAX_MEDIA_PAYLOAD_BYTES,
        },
        "messages": messages,
    }


def main() -> None:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden_document(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
