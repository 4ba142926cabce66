"""A fitted keyframe played back exactly as the stream decoder will: the frames it makes final
and the latents the next keyframe's fit starts from.

``chunk-reset``: the group ``[p_{k-1}, p_k)`` in one call, then frame ``p_k`` alone (it starts
the next group). ``chained``: the group ``(p_{k-1}, p_k]``, cut where a chunk starts as the
decoder cuts it. The regenerated frames' MSE is the keyframe's reported quality, and their
group input and x0 feed the previous-latent term of the next keyframe (``FitState``).
"""

from __future__ import annotations

import numpy as np
import torch

from authoring.fit_state import FitState
from authoring.plan import KeyframeSpan
from authoring.problems import KeyframeProblems
from prompts.keyframe import Keyframe, interpolate_context


class DecoderReplay:
    """Regenerates each keyframe's span of one level with the decoder's own batches."""

    def __init__(self, problems: KeyframeProblems) -> None:
        """``problems``: the level's spans, source frames, init latent and latent mixing."""
        self.problems = problems
        self.frames = problems.frames
        self.device = problems.device

    @torch.no_grad()
    def regenerate(
        self, span: KeyframeSpan, keyframe: Keyframe, state: FitState
    ) -> tuple[int, np.ndarray, float, np.ndarray, np.ndarray]:
        """Regenerate with the decoder's own batches.

        Returns (first final frame, final frames, MSE of the span's frames, next group input,
        x0 of p_k). ``chunk-reset``: the group ``[p_{k-1}, p_k)`` in one call, then frame
        ``p_k`` (the first frame of the next group), final only when it is the stream's last
        frame (else with the next keyframe's group). ``chained``: the group ``(p_{k-1}, p_k]``,
        cut where a chunk starts as the decoder cuts it; all final.
        """
        problems = self.problems
        if problems.chained and span.index > 0:
            return self._regenerate_chained(span, keyframe, state)
        backend = problems.gen.backend
        last_span = span.index == len(problems.spans) - 1
        decoded_start, decoded = span.end, []
        if span.index == 0:
            end_input = problems.init_input
        else:
            previous = state.keyframes[-1]
            contexts = [previous.context()] + [
                interpolate_context(previous, keyframe, f) for f in span.frames[:-1]
            ]
            ctx = torch.from_numpy(np.stack(contexts)).to(self.device)
            group_in = torch.from_numpy(state.group_input).to(self.device)
            x0, group_frames = backend.generate(group_in.expand(len(contexts), -1, -1, -1), ctx)
            decoded_start = span.start
            decoded.append(group_frames.cpu().numpy())
            end_input = (
                problems.init_input if span.end_starts_chunk else problems.unet_input(x0[-1:])
            )
        end_ctx = torch.from_numpy(keyframe.context()[None]).to(self.device)
        x0_end, end_frame = backend.generate(end_input, end_ctx)
        span_frames = np.concatenate(decoded + [end_frame.cpu().numpy()])[-len(span.frames) :]
        if last_span or (problems.chained and span.index == 0):
            decoded.append(end_frame.cpu().numpy())
        final = (
            np.concatenate(decoded) if decoded else np.zeros((0, *self.frames.shape[1:]), np.uint8)
        )
        return (decoded_start, final, self._mse(span, span_frames), end_input.cpu().numpy(),
                x0_end.float().cpu().numpy())  # fmt: skip

    def _regenerate_chained(
        self, span: KeyframeSpan, keyframe: Keyframe, state: FitState
    ) -> tuple[int, np.ndarray, float, np.ndarray, np.ndarray]:
        problems = self.problems
        previous = state.keyframes[-1]
        group_in = problems.unet_input(torch.from_numpy(state.last_x0))
        chunk_frames = problems.config.chunk_frames
        cuts = [f for f in span.frames if f % chunk_frames == 0 and f != span.frames[0]]
        pieces, x0 = [], None
        for part in np.split(np.array(span.frames), [f - span.frames[0] for f in cuts]):
            ctx = np.stack([interpolate_context(previous, keyframe, int(f)) for f in part])
            latents = group_in.expand(len(part), -1, -1, -1)
            x0, frames = problems.gen.backend.generate(
                latents, torch.from_numpy(ctx).to(self.device)
            )
            pieces.append(frames.cpu().numpy())
        assert x0 is not None
        span_frames = np.concatenate(pieces)
        return (span.frames[0], span_frames, self._mse(span, span_frames), group_in.cpu().numpy(),
                x0[-1:].float().cpu().numpy())  # fmt: skip

    def _mse(self, span: KeyframeSpan, span_frames: np.ndarray) -> float:
        targets = self.frames[span.frames].astype(np.float64)
        return float(((span_frames.astype(np.float64) - targets) / 127.5).__pow__(2).mean())
