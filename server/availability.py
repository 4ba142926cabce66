"""Which chunk a `get` may have: the availability rules of a channel's manifest (pure).

``available_chunk`` answers one request from the manifest alone (no sockets, no files): the
facts of the chunk to send, or the :class:`wire.errors.ProtocolError` that refuses it. A live
feed's manifest counts only the chunks published so far, so a request just past the live edge
is `not_available` (retry) and one far past it `beyond_live_edge`; a request before the DVR
window is `outside_window`, a chunk the feed skipped is a `gap`.
"""

from __future__ import annotations

from prompts.manifest import ChunkInfo, Manifest
from wire.errors import ErrorCode, ProtocolError


def available_chunk(
    manifest: Manifest, level: int, chunk: int, *, live_ahead_chunks: int
) -> ChunkInfo:
    """The facts of chunk ``chunk`` of level ``level``, or a ProtocolError saying why not.

    ``live_ahead_chunks``: how far past a live edge a request counts as early (retry) rather
    than absurd.
    """
    levels = manifest.levels
    if level >= len(levels):
        raise ProtocolError(
            ErrorCode.UNKNOWN_LEVEL,
            f"level {level} does not exist (levels 0..{len(levels) - 1})",
        )
    total = manifest.stream.chunk_count
    published = manifest.chunk_count
    live = manifest.stream.live
    if chunk < manifest.window_start:
        raise ProtocolError(
            ErrorCode.OUTSIDE_WINDOW,
            f"chunk {chunk} has left the live window (it starts at chunk "
            f"{manifest.window_start}; the live edge is {published})",
        )
    if chunk >= published:
        # a live feed's manifest counts only the frames known so far: near the edge, wait
        if live and chunk < published + live_ahead_chunks:
            raise ProtocolError(
                ErrorCode.NOT_AVAILABLE,
                f"chunk {chunk} is not published yet (live edge: {published} chunks); retry",
            )
        if chunk >= total or not live:
            raise ProtocolError(
                ErrorCode.UNKNOWN_CHUNK,
                f"chunk {chunk} does not exist (the stream has {total} chunks, "
                f"{published} published)",
            )
        raise ProtocolError(
            ErrorCode.BEYOND_LIVE_EDGE,
            f"chunk {chunk} is far beyond the live edge ({published} chunks)",
        )
    cell = manifest.chunk_info(level, chunk)
    assert cell is not None  # inside the window and published
    if cell.gap:
        raise ProtocolError(
            ErrorCode.GAP,
            f"chunk {chunk} of level {level} is a gap in this live channel; skip it",
        )
    return cell
