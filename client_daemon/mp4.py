"""Read-only ISO-BMFF (MP4) box helpers: split fMP4 output, find the codec string, read tfdt.

Pure functions over bytes; they raise :class:`Mp4FormatError` naming the defect. The
codec string is parsed from the ``avcC`` box of the init segment rather than hard-coded,
because x264 picks profile and level from the settings, the picture size and the rate.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from common.errors import UserError

BOX_HEADER = struct.Struct(">I4s")  # 32-bit size, 4-character type
LARGE_SIZE = struct.Struct(">Q")  # 64-bit size that follows when the 32-bit size is 1
FULL_BOX_HEADER_BYTES = 4  # version (1 byte) + flags (3 bytes)
STSD_ENTRY_COUNT_BYTES = 4  # stsd: entry count after the full-box header
VISUAL_SAMPLE_ENTRY_BYTES = 78  # avc1: reserved, data reference index, sizes, compressor name...

INIT_BOXES = ("ftyp", "moov")
SEGMENT_BOXES = ("moof", "mdat")


class Mp4FormatError(UserError, ValueError):
    """Bytes that are not the expected MP4 boxes."""


def _box_spans(data: bytes) -> Iterator[tuple[str, int, int, int]]:
    """Top-level boxes as (type, box start, payload start, box end) offsets."""
    offset = 0
    while offset < len(data):
        if offset + BOX_HEADER.size > len(data):
            raise Mp4FormatError(f"truncated box header at byte {offset} of {len(data)}")
        size, raw_type = BOX_HEADER.unpack_from(data, offset)
        header = BOX_HEADER.size
        if size == 1:
            if offset + header + LARGE_SIZE.size > len(data):
                raise Mp4FormatError(f"truncated 64-bit box size at byte {offset}")
            (size,) = LARGE_SIZE.unpack_from(data, offset + header)
            header += LARGE_SIZE.size
        elif size == 0:  # "extends to the end of the data"
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise Mp4FormatError(
                f"box {raw_type!r} at byte {offset} claims {size} bytes; {len(data) - offset} remain"
            )
        yield raw_type.decode("latin-1"), offset, offset + header, offset + size
        offset += size


def iter_boxes(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Top-level boxes of ``data`` as (type, payload without the box header)."""
    for kind, _, payload_start, end in _box_spans(data):
        yield kind, data[payload_start:end]


def box_types(data: bytes) -> list[str]:
    """Types of the top-level boxes of ``data``, in order."""
    return [kind for kind, _ in iter_boxes(data)]


def find_box(data: bytes, path: str) -> bytes:
    """Payload of the first box at ``path`` ("moov/trak/mdia/mdhd"); Mp4FormatError if absent."""
    payload = data
    for kind in path.split("/"):
        payload = _child(payload, kind, path)
    return payload


def _child(payload: bytes, kind: str, path: str) -> bytes:
    for child_kind, child in iter_boxes(payload):
        if child_kind == kind:
            return child
    raise Mp4FormatError(f"no '{kind}' box on the path {path}")


def split_init(data: bytes) -> tuple[bytes, bytes]:
    """Split muxer output into (init segment ftyp+moov, the rest)."""
    kinds: list[str] = []
    end = 0
    for kind, _, _, box_end in _box_spans(data):
        if kind not in INIT_BOXES:
            break
        kinds.append(kind)
        end = box_end
    if kinds != list(INIT_BOXES):
        raise Mp4FormatError(f"output does not start with ftyp+moov: {box_types(data)[:4]}")
    return data[:end], data[end:]


def avc_codec_string(init: bytes) -> str:
    """RFC 6381 codec string ("avc1.PPCCLL") from the avcC box of an init segment."""
    stsd = find_box(init, "moov/trak/mdia/minf/stbl/stsd")
    entries = stsd[FULL_BOX_HEADER_BYTES + STSD_ENTRY_COUNT_BYTES :]
    for kind, entry in iter_boxes(entries):
        if kind in ("avc1", "avc3"):
            avcc = _child(entry[VISUAL_SAMPLE_ENTRY_BYTES:], "avcC", f"stsd/{kind}/avcC")
            if len(avcc) < 4 or avcc[0] != 1:
                raise Mp4FormatError("avcC box is too short or not configuration version 1")
            profile, compatibility, level = avcc[1], avcc[2], avcc[3]
            return f"{kind}.{profile:02X}{compatibility:02X}{level:02X}"
    raise Mp4FormatError("the init segment has no avc1/avc3 sample entry")


def mime_type(init: bytes) -> str:
    """The MIME type for MediaSource.addSourceBuffer, e.g. video/mp4; codecs="avc1.42C01E"."""
    return f'video/mp4; codecs="{avc_codec_string(init)}"'


def track_timescale(init: bytes) -> int:
    """Ticks per second of the (single) track, from moov/trak/mdia/mdhd."""
    mdhd = find_box(init, "moov/trak/mdia/mdhd")
    if mdhd[0] == 1:  # version 1: 64-bit creation and modification times
        return int(struct.unpack_from(">I", mdhd, 4 + 16)[0])
    return int(struct.unpack_from(">I", mdhd, 4 + 8)[0])


def segment_decode_time(segment: bytes) -> int:
    """The baseMediaDecodeTime (tfdt) of a moof+mdat media segment, in track ticks."""
    tfdt = find_box(segment, "moof/traf/tfdt")
    if tfdt[0] == 1:
        return int(LARGE_SIZE.unpack_from(tfdt, FULL_BOX_HEADER_BYTES)[0])
    return int(struct.unpack_from(">I", tfdt, FULL_BOX_HEADER_BYTES)[0])


def segment_sample_count(segment: bytes) -> int:
    """Number of samples (frames) described by the segment's trun boxes."""
    moof = find_box(segment, "moof")
    count = 0
    for kind, traf in iter_boxes(moof):
        if kind != "traf":
            continue
        for child_kind, child in iter_boxes(traf):
            if child_kind == "trun":
                count += int(struct.unpack_from(">I", child, FULL_BOX_HEADER_BYTES)[0])
    return count
