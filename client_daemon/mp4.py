"""ISO-BMFF (MP4) box helpers: split fMP4 output, find the codec string, read tfdt, write fragments.

Pure functions over bytes; they raise :class:`Mp4FormatError` naming the defect. The
codec string is parsed from the ``avcC`` box of the init segment rather than hard-coded,
because x264 picks profile and level from the settings, the picture size and the rate.
:func:`fragment` writes one moof+mdat media segment from H.264 samples, laid out as FFmpeg's
mov muxer lays out a fragment (``default_base_moof``), so the muxer needs no FFmpeg container
per GOP; :func:`annexb_to_avcc` turns an encoder's start-code packets into such samples.
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

START_CODE = b"\x00\x00\x01"  # Annex B: a NAL unit follows (a 4-byte code has one more 0 first)
NAL_LENGTH = struct.Struct(">I")  # AVCC: each NAL unit behind its 4-byte length (avcC says 4)
UINT32 = struct.Struct(">I")
TRACK_ID = 1  # the init segment's only track
SEQUENCE_NUMBER = 1  # mfhd: every segment stands alone, as FFmpeg numbers a fresh fragment
TFHD_FLAGS = 0x020038  # default-base-is-moof, default sample duration, size and flags
TRUN_FLAGS = 0x000205  # data offset, first sample flags, a size per sample
SYNC_SAMPLE_FLAGS = 0x02000000  # depends on no other sample: the GOP's IDR
NON_SYNC_SAMPLE_FLAGS = 0x01010000  # depends on others, not a sync sample


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


def annexb_to_avcc(packet: bytes) -> bytes:
    """An H.264 access unit in Annex B form (start codes) as AVCC: NAL units behind 4-byte lengths."""
    start = packet.find(START_CODE)
    if start < 0:
        raise Mp4FormatError("no Annex B start code in the H.264 packet")
    view = memoryview(packet)
    out = bytearray()
    start += len(START_CODE)
    while start < len(packet):
        found = packet.find(START_CODE, start)
        end = len(packet) if found < 0 else found
        stop = end
        while stop > start and packet[stop - 1] == 0:  # a 4-byte start code's zero, trailing zeros
            stop -= 1  # (a NAL unit ends in its stop bit, never in a zero byte)
        if stop > start:
            out += NAL_LENGTH.pack(stop - start)
            out += view[start:stop]
        if found < 0:
            break
        start = found + len(START_CODE)
    if not out:
        raise Mp4FormatError("the H.264 packet holds no NAL unit")
    return bytes(out)


def _box(kind: bytes, *parts: bytes) -> bytes:
    return BOX_HEADER.pack(BOX_HEADER.size + sum(len(part) for part in parts), kind) + b"".join(
        parts
    )


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, UINT32.pack(version << 24 | flags), payload)


def fragment(samples: list[bytes], decode_time: int, sample_duration: int) -> bytes:
    """One moof+mdat media segment: AVCC ``samples`` (the first a sync sample, the rest not)
    of ``sample_duration`` ticks each, the first at ``decode_time`` ticks (tfdt)."""
    if not samples:
        raise ValueError("a fragment needs at least one sample")
    mfhd = _full_box(b"mfhd", 0, 0, UINT32.pack(SEQUENCE_NUMBER))
    defaults = struct.pack(
        ">IIII", TRACK_ID, sample_duration, len(samples[0]), NON_SYNC_SAMPLE_FLAGS
    )
    tfhd = _full_box(b"tfhd", 0, TFHD_FLAGS, defaults)
    tfdt = _full_box(b"tfdt", 1, 0, LARGE_SIZE.pack(decode_time))
    sizes = struct.pack(f">{len(samples)}I", *(len(sample) for sample in samples))

    def trun(data_offset: int) -> bytes:
        head = struct.pack(">IiI", len(samples), data_offset, SYNC_SAMPLE_FLAGS)
        return _full_box(b"trun", 0, TRUN_FLAGS, head + sizes)

    moof_size = len(_box(b"moof", mfhd, _box(b"traf", tfhd, tfdt, trun(0))))
    moof = _box(b"moof", mfhd, _box(b"traf", tfhd, tfdt, trun(moof_size + BOX_HEADER.size)))
    return moof + _box(b"mdat", *samples)
