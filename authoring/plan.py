"""Which frames each keyframe's fit optimises, and which UNet input each of them sees.

This is docs/architecture.md's stream model read from the fitting side: keyframe ``k > 0``
shapes the frames ``(p_{k-1}, p_k]`` (interpolated frames plus its own frame), keyframe 0
shapes frame 0 alone. Frames in ``[p_{k-1}, p_k)`` share the input of the group that starts at
``p_{k-1}``; frame ``p_k`` starts the next group, whose previous latent is the stream's init
latent on a chunk start (``chunk-reset``) and otherwise the x0 of frame ``p_k - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prompts.keyframe import keyframe_positions
from prompts.stream_model import CHAINED, CHUNK_RESET


@dataclass(frozen=True)
class KeyframeSpan:
    """The frames one keyframe's fit optimises."""

    index: int  # keyframe number k
    start: int  # p_{k-1} (equal to ``end`` for keyframe 0)
    end: int  # p_k, the keyframe's own frame
    end_starts_chunk: bool  # frame p_k starts a chunk: its previous latent is the init latent

    @property
    def length(self) -> int:
        """Interval length n_k = p_k - p_{k-1} (0 for keyframe 0)."""
        return self.end - self.start

    @property
    def frames(self) -> list[int]:
        """Frames the fit optimises, in order: ``p_{k-1}+1 .. p_k``."""
        if self.index == 0:
            return [self.end]
        return list(range(self.start + 1, self.end + 1))

    @property
    def weights(self) -> list[float]:
        """Weight of this keyframe's factors in each optimised frame (s / n_k)."""
        if self.index == 0:
            return [1.0]
        return [(f - self.start) / self.length for f in self.frames]


def check_level_geometry(frames: int, interval: int, chunk_frames: int) -> None:
    """Raise ValueError when a level cannot be laid out on the stream."""
    if frames < 1:
        raise ValueError("the video has no frames")
    if interval < 1:
        raise ValueError(f"interval must be at least 1, got {interval}")
    if interval > frames - 1 and frames > 1:
        raise ValueError(f"interval {interval} is longer than the video ({frames} frames)")
    if chunk_frames < 1 or chunk_frames % interval:
        raise ValueError(
            f"chunk length {chunk_frames} frames is not a multiple of interval {interval}"
        )


def keyframe_spans(
    frames: int, interval: int, chunk_frames: int, rule: str = CHUNK_RESET
) -> list[KeyframeSpan]:
    """One span per keyframe of a level, in fitting order.

    Under the ``chained`` rule no later frame restarts from the init latent.
    """
    check_level_geometry(frames, interval, chunk_frames)
    positions = keyframe_positions(frames, interval)
    spans = [KeyframeSpan(0, 0, 0, True)]
    for k in range(1, len(positions)):
        end = positions[k]
        resets = rule != CHAINED and end % chunk_frames == 0
        spans.append(KeyframeSpan(k, positions[k - 1], end, resets))
    return spans
