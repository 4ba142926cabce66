"""Baselines for ``promptus eval``: classic codecs through PyAV, the paper's TAESD-latent "VAE"
codec, and a thumbnail codec (the floor any learned prompt must clear at the same bytes).

Classic codecs are matched to a target bitrate by a CRF search (ABR rate control overshoots
badly on clips of a few seconds); bitrates count the coded packets only, as a prompt level's
bitrate counts its chunk files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from prompts import entropy
from prompts.quant import quantize_tensor

if TYPE_CHECKING:
    from diffusers import AutoencoderTiny

# name -> (PyAV encoder, PyAV decoder, CRF range, extra options)
CLASSIC_CODECS: dict[str, tuple[str, str, tuple[int, int], dict[str, str]]] = {
    "x264": ("libx264", "h264", (0, 51), {"preset": "medium"}),
    "x265": ("libx265", "hevc", (0, 51), {"preset": "medium", "x265-params": "log-level=error"}),
    "svt-av1": ("libsvtav1", "libdav1d", (1, 63), {"preset": "8"}),
}
GOP_SECONDS = 2.0  # one intra frame per chunk length, as a streaming encoder would
VAE_BITS = (2, 3, 4, 5, 6, 8)  # quantisation depths tried by the VAE baseline
VAE_INTERVALS = (1, 2, 3, 5, 10, 15, 30)  # latent keyframe spacings tried (frames)
THUMBNAIL_HEADER_BYTES = 4  # a thumbnail keyframe's width and height (uint16 each)


@dataclass(frozen=True)
class CodedClip:
    """One encode of the reference: its bitrate and decoded frames."""

    codec: str
    setting: str
    kbps: float
    frames: np.ndarray  # uint8 [T, H, W, 3]


def encode_classic(codec: str, frames: np.ndarray, fps: float, crf: int) -> CodedClip:
    """Encode and decode ``frames`` with a PyAV encoder at one CRF."""
    import av
    from av.video.codeccontext import VideoCodecContext

    encoder, decoder_name, _, options = CLASSIC_CODECS[codec]
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner otherwise
    height, width = frames.shape[1:3]
    context = av.CodecContext.create(encoder, "w")
    assert isinstance(context, VideoCodecContext)  # CLASSIC_CODECS are video codecs
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    rate = max(1, round(fps))
    context.time_base = Fraction(1, rate)
    context.framerate = Fraction(rate, 1)
    context.gop_size = max(1, round(GOP_SECONDS * fps))
    context.options = {**options, "crf": str(crf)}
    context.thread_count = 1
    packets = []
    for index, array in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24").reformat(
            format="yuv420p"
        )
        frame.pts = index
        packets.extend(context.encode(frame))
    packets.extend(context.encode(None))
    coded_bytes = sum(packet.size for packet in packets)
    decoder = av.CodecContext.create(decoder_name, "r")
    assert isinstance(decoder, VideoCodecContext)
    decoded = []
    for packet in packets:
        decoded.extend(decoder.decode(packet))
    decoded.extend(decoder.decode(None))
    out = np.stack([f.to_ndarray(format="rgb24") for f in decoded])
    if len(out) != len(frames):
        raise RuntimeError(f"{codec} decoded {len(out)} frames of {len(frames)}")
    return CodedClip(codec, f"crf {crf}", coded_bytes * 8 / 1000 / (len(frames) / fps), out)


def match_bitrate(
    encode: Callable[[int], CodedClip], low: int, high: int, target_kbps: float
) -> CodedClip:
    """Binary search on a CRF-like knob (higher = smaller) for the encode closest to ``target_kbps``."""
    best: CodedClip | None = None
    while low <= high:
        crf = (low + high) // 2
        clip = encode(crf)
        if best is None or abs(math.log(clip.kbps / target_kbps)) < abs(
            math.log(best.kbps / target_kbps)
        ):
            best = clip
        if clip.kbps > target_kbps:
            low = crf + 1
        else:
            high = crf - 1
    assert best is not None
    return best


def classic_at(codec: str, frames: np.ndarray, fps: float, target_kbps: float) -> CodedClip:
    """The encode of ``codec`` whose bitrate is closest to ``target_kbps``."""
    low, high = CLASSIC_CODECS[codec][2]
    return match_bitrate(
        lambda crf: encode_classic(codec, frames, fps, crf), low, high, target_kbps
    )


class VAEBaseline:
    """TAESD latents of sampled frames, quantised to ``bits`` and DEFLATE-coded; linear in between."""

    def __init__(self, taesd: AutoencoderTiny, frames: np.ndarray, fps: float) -> None:
        import torch

        self.taesd = taesd
        self.fps = fps
        self.count = len(frames)
        with torch.no_grad():
            batch = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
            self.latents = torch.cat([taesd.encoder(b) for b in batch.split(8)]).numpy()

    def quantized(self, bits: int, interval: int) -> tuple[float, np.ndarray]:
        """(kbps, restored latents) of one setting, without decoding."""
        positions = sorted(set(range(0, self.count, interval)) | {self.count - 1})
        levels = 2**bits - 1
        coded, restored = 0, {}
        for p in positions:
            q = quantize_tensor(self.latents[p])
            reduced = np.round(q.data.astype(np.float32) * levels / 255).astype(np.uint8)
            coded += (
                len(entropy.deflate(reduced.tobytes())) + 8
            )  # + scale and zero point (float32 each)
            data = np.round(reduced.astype(np.float32) * 255 / levels)
            restored[p] = np.float32(q.scale) * (data - np.float32(q.zero_point))
        return coded * 8 / 1000 / (self.count / self.fps), _crossfade(restored, self.count)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """TAESD-decoded ``uint8 [T, H, W, 3]`` frames of latents."""
        import torch

        with torch.no_grad():
            images = torch.cat(
                [
                    self.taesd.decoder(torch.from_numpy(x))
                    for x in np.array_split(latents, max(1, len(latents) // 8))
                ]
            )
        return (
            ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        )

    def at(
        self, target_kbps: float, score: Callable[[np.ndarray], float], tries: int = 3
    ) -> CodedClip:
        """Of the ``tries`` settings closest under ``target_kbps`` (+10%), the best-scoring one."""
        settings = [(bits, n) for bits in VAE_BITS for n in VAE_INTERVALS if n < max(self.count, 2)]
        rated = [(self.quantized(bits, n)[0], bits, n) for bits, n in settings]
        under = sorted((r for r in rated if r[0] <= target_kbps * 1.1), reverse=True)[:tries]
        if not under:
            under = [min(rated)]
        clips = []
        for _, bits, n in under:
            kbps, latents = self.quantized(bits, n)
            clips.append(CodedClip("vae", f"{bits} bit, every {n}", kbps, self.decode(latents)))
        return max(clips, key=lambda c: score(c.frames))


def _crossfade(keyframes: dict[int, np.ndarray], count: int) -> np.ndarray:
    """Frames ``0 .. count-1`` blended linearly between the float keyframes at ``keyframes``'
    positions (which include 0 and ``count - 1``), as prompts interpolate between keyframes."""
    positions = sorted(keyframes)
    out = np.empty((count, *keyframes[positions[0]].shape), np.float32)
    for a, b in zip(positions, positions[1:] + [positions[-1]], strict=True):
        for f in range(a, max(b, a + 1)):
            w = np.float32(0.0 if b == a else (f - a) / (b - a))
            out[f] = (1 - w) * keyframes[a] + w * keyframes[b]
    return out


def thumbnail_clip(frames: np.ndarray, fps: float, interval: int, side: int) -> CodedClip:
    """Every ``interval``-th frame (and the last) shrunk to ``side`` pixels on its short side,
    8-bit RGB, DEFLATE-coded like prompt chunks; decoded by bicubic upscaling and a linear
    cross-fade between keyframes. Bitrate: the coded thumbnails and their size headers."""
    from PIL import Image

    count, height, width = frames.shape[:3]
    scale = side / min(height, width)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    positions = sorted(set(range(0, count, interval)) | {count - 1})
    coded, restored = 0, {}
    for p in positions:
        thumb = Image.fromarray(frames[p]).resize(small, Image.Resampling.BICUBIC)
        coded += len(entropy.deflate(np.asarray(thumb).tobytes())) + THUMBNAIL_HEADER_BYTES
        restored[p] = np.asarray(
            thumb.resize((width, height), Image.Resampling.BICUBIC), np.float32
        )
    decoded = np.clip(np.round(_crossfade(restored, count)), 0, 255).astype(np.uint8)
    kbps = coded * 8 / 1000 / (count / fps)
    return CodedClip("thumbnail", f"{small[0]}x{small[1]} every {interval}", kbps, decoded)


def thumbnail_at(frames: np.ndarray, fps: float, interval: int, target_kbps: float) -> CodedClip:
    """The largest thumbnail (every ``interval`` frames) whose bitrate stays within
    ``target_kbps``; the smallest one when none does."""
    low, high = 1, min(frames.shape[1:3])
    best = thumbnail_clip(frames, fps, interval, low)
    while low <= high:
        side = (low + high) // 2
        clip = thumbnail_clip(frames, fps, interval, side)
        if clip.kbps <= target_kbps:
            best, low = clip, side + 1
        else:
            high = side - 1
    return best
