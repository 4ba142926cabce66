"""One page's generation session: the stream it opened and the order rules for its chunks.

Pure bookkeeping (no sockets, no threads): :meth:`Session.accept_chunk` turns a forwarded
`chunk` message into a :class:`ChunkJob` or raises :class:`wire.errors.ProtocolError`
naming what is wrong. Chunks must arrive in order; a `seek` announces a jump. After a level
switch, a seek or a failed chunk the next chunk needs its switch prefix (the keyframe at its
first frame), because the engine no longer holds that keyframe from the sequence, unless the
chunk is closed (it holds that keyframe itself: the start of a closed segment).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prompts.chunk import ChunkFormatError, PromptChunk, parse_chunk
from prompts.stream_model import GeneratorMismatchError, check_generator
from wire.daemon import Seek, StreamSetup
from wire.errors import ErrorCode, ProtocolError
from wire.media import ChunkMessage


@dataclass(frozen=True)
class ChunkJob:
    """A validated chunk waiting for generation."""

    level: int
    chunk: PromptChunk
    prefix: PromptChunk | None
    received_at: float  # time.perf_counter() when the message was accepted

    @property
    def index(self) -> int:
        return self.chunk.index

    @property
    def frames(self) -> int:
        return self.chunk.frame_count


def _bad_chunk(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_CHUNK, message)


class Session:
    """Order and continuity rules of one opened stream, and the daemon's budget for its chunks:
    the context shape of the daemon's generator and the longest generation group it runs."""

    def __init__(
        self, setup: StreamSetup, *, context_shape: tuple[int, int], max_group_frames: int
    ) -> None:
        self.setup = setup
        self.context_shape = context_shape
        self.max_group_frames = max_group_frames
        self._last: tuple[int, int] | None = None  # (level, chunk) of the last accepted chunk
        self._continuous = False  # the engine holds the keyframe that starts the next chunk
        self._seek_to: int | None = None

    @property
    def next_chunk(self) -> int:
        """The chunk index the session accepts next."""
        if self._seek_to is not None:
            return self._seek_to
        return 0 if self._last is None else self._last[1] + 1

    def accept_seek(self, seek: Seek) -> None:
        """Announce that the next chunk is ``seek.chunk`` (not the successor of the last)."""
        if self.setup.prev_latent_rule == "chained" and seek.chunk != 0:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"cannot seek to chunk {seek.chunk}: this stream uses the 'chained' rule, "
                "so decoding must start at chunk 0",
            )
        self._seek_to = seek.chunk
        self._continuous = False

    def break_continuity(self) -> None:
        """The engine lost the sequence (a chunk failed): the next chunk needs its prefix."""
        self._continuous = False

    def accept_chunk(self, message: ChunkMessage) -> ChunkJob:
        """Validate a forwarded `chunk` message against the stream and the order rules."""
        where = f"chunk {message.chunk} of level {message.level}"
        chunk = self._parse(message.data, where)
        prefix = (
            self._parse(message.prefix, f"switch prefix of {where}") if message.prefix else None
        )
        self._check_identity(chunk, message, where)
        self._check_groups(chunk, where)
        self._check_order(chunk, where)
        switching = self._last is not None and self._last[0] != chunk.level
        if prefix is not None:
            self._check_prefix(prefix, chunk, where)
        elif chunk.index > 0 and not chunk.closed and (switching or not self._continuous):
            reason = "a level switch" if switching else "a seek or a failed chunk"
            raise _bad_chunk(
                f"{where} needs the switch prefix (the keyframe at frame {chunk.frame_start}) "
                f"after {reason}; request it with prefix: true"
            )
        self._last = (chunk.level, chunk.index)
        self._continuous = True
        self._seek_to = None
        return ChunkJob(message.level, chunk, prefix, time.perf_counter())

    def _parse(self, data: bytes, what: str) -> PromptChunk:
        try:
            # claims over the budget are refused from the header, before anything is inflated
            return parse_chunk(
                data, context_shape=self.context_shape, max_frames=self.setup.chunk_frames
            )
        except ChunkFormatError as error:
            raise _bad_chunk(f"{what} is not a valid prompt chunk: {error}") from None

    def _check_groups(self, chunk: PromptChunk, where: str) -> None:
        """No generation group longer than the budget: groups run between keyframes, so no two
        consecutive keyframes (the chunk's first and last frame included) may lie further apart."""
        marks = sorted({chunk.frame_start, chunk.frame_end, *(k.frame for k in chunk.keyframes)})
        gaps = [(b - a, a, b) for a, b in zip(marks, marks[1:], strict=False)]
        longest, start, end = max(gaps, key=lambda gap: gap[0])  # the first longest
        if longest > self.max_group_frames:
            raise _bad_chunk(
                f"{where} has no keyframe between frames {start} and {end} ({longest} frames); "
                f"this daemon generates at most {self.max_group_frames} frames between keyframes "
                "(promptus daemon --max-group-frames)"
            )

    def _check_identity(self, chunk: PromptChunk, message: ChunkMessage, where: str) -> None:
        try:
            check_generator(chunk.generator_id, self.setup.generator_id, where)
        except GeneratorMismatchError as error:
            raise ProtocolError(ErrorCode.GENERATOR_MISMATCH, str(error)) from None
        if chunk.is_prefix:
            raise _bad_chunk(f"{where} holds a switch prefix, which has no frames of its own")
        if (chunk.level, chunk.index) != (message.level, message.chunk):
            raise _bad_chunk(
                f"the header names {where} but the payload holds chunk {chunk.index} "
                f"of level {chunk.level}"
            )
        length = self.setup.chunk_frames
        start = chunk.index * length
        if chunk.frame_start != start or not 0 < chunk.frame_count <= length:
            raise _bad_chunk(
                f"{where} covers frames [{chunk.frame_start}, {chunk.frame_end}); with "
                f"{length} frames per chunk it must start at frame {start} and hold 1..{length}"
            )

    def _check_order(self, chunk: PromptChunk, where: str) -> None:
        expected = self.next_chunk
        if chunk.index == expected:
            return
        if self._seek_to is not None:
            raise _bad_chunk(f"{where} arrived after a seek to chunk {self._seek_to}")
        if self._last is None:
            raise _bad_chunk(
                f"{where} cannot start the session: the first chunk is 0 unless a "
                "seek {chunk: N} announces another"
            )
        raise _bad_chunk(
            f"{where} is out of order: the last chunk was {self._last[1]}, so the next is "
            f"{expected}; send a seek {{chunk: {chunk.index}}} before a jump"
        )

    def _check_prefix(self, prefix: PromptChunk, chunk: PromptChunk, where: str) -> None:
        if not prefix.is_prefix:
            raise _bad_chunk(f"the switch prefix of {where} is a whole chunk, not a prefix")
        if prefix.generator_id != chunk.generator_id or prefix.level != chunk.level:
            raise _bad_chunk(
                f"the switch prefix of {where} belongs to level {prefix.level} of "
                f"'{prefix.generator_id}'"
            )
        if prefix.frame_start != chunk.frame_start:
            raise _bad_chunk(
                f"the switch prefix of {where} holds frame {prefix.frame_start}, "
                f"the chunk starts at frame {chunk.frame_start}"
            )
