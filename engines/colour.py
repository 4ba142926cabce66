"""Decoder images -> the frames a stream hands out: packed RGB, or planar YUV 4:2:0 for the encoder.

``yuv420p`` is what x264 (and every browser codec) takes. Converting on the device, inside the
generation step, halves the device -> host copy (1.5 bytes a pixel instead of 3) and spares the
CPU the RGB -> YUV conversion before encoding. The arithmetic reproduces FFmpeg's swscale
conversion of ``rgb24`` to ``yuv420p`` (BT.601, limited range, the path PyAV takes when x264 is
given RGB) to within one level on every plane: luma per pixel, chroma from the mean of each
horizontal pair, filtered vertically with swscale's [1, 3, 3, 1] / 8 taps (edge rows repeated).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RGB24 = "rgb24"  # uint8 [B, H, W, 3]
YUV420P = "yuv420p"  # uint8 [B, H * 3 / 2, W]: the Y plane, then U and V (H/2 x W/2 each), as PyAV takes it
FRAME_FORMATS = (RGB24, YUV420P)

# BT.601 limited range ("studio swing"), in levels per RGB level: rows Y, U, V; offsets 16, 128, 128
BT601_LIMITED = (
    (65.481 / 255, 128.553 / 255, 24.966 / 255),
    (-37.797 / 255, -74.203 / 255, 112.0 / 255),
    (112.0 / 255, -93.786 / 255, -18.214 / 255),
)
BT601_OFFSETS = (16.0, 128.0, 128.0)
CHROMA_VERTICAL_TAPS = (
    1.0,
    3.0,
    3.0,
    1.0,
)  # over rows 2i-1 .. 2i+2 (swscale's default 4:2:0 siting)


def check_frame_format(frame_format: str) -> None:
    if frame_format not in FRAME_FORMATS:
        raise ValueError(
            f"frame format {frame_format!r}: expected one of {', '.join(FRAME_FORMATS)}"
        )


def frame_shape(frame_format: str, height: int, width: int) -> tuple[int, ...]:
    """Shape of one frame of ``frame_format`` (without the batch axis)."""
    check_frame_format(frame_format)
    if frame_format == RGB24:
        return (height, width, 3)
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs an even frame size, got {width}x{height}")
    return (height * 3 // 2, width)


def image_levels(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] images in about [-1,1] -> float RGB levels 0..255, already rounded (the uint8 values)."""
    return ((image.float() + 1.0) * 127.5).round().clamp(0, 255)


def _bt601_plane(
    red: torch.Tensor, green: torch.Tensor, blue: torch.Tensor, row: int
) -> torch.Tensor:
    """Plane ``row`` (0 Y, 1 U, 2 V) of BT.601 limited range, unrounded, from float RGB levels."""
    (r, g, b), offset = BT601_LIMITED[row], BT601_OFFSETS[row]
    # scalar arithmetic: no constant tensors to export
    return offset + r * red + g * green + b * blue


def levels_to_luma(levels: torch.Tensor) -> torch.Tensor:
    """Float RGB levels [B,3,H,W] -> the uint8 luma [B,H,W] the encoder gets (yuv420p's Y plane)."""
    red, green, blue = levels.unbind(1)
    return _bt601_plane(red, green, blue, 0).round().clamp(0, 255).to(torch.uint8)


def levels_to_planes(levels: torch.Tensor, frame_format: str) -> tuple[torch.Tensor, ...]:
    """Float RGB levels [B,3,H,W] -> the uint8 planes of ``frame_format``, each contiguous.

    ``rgb24``: one [B,H,W,3]; ``yuv420p``: luma [B,H,W] and chroma [B,2,H/2,W/2] (U then V).
    Only elementwise arithmetic, reshapes, means and zero pads: what a compiler fuses without
    trouble (torch 2.11's Inductor failed on a replicate pad and a flattening concatenation).
    """
    check_frame_format(frame_format)
    if frame_format == RGB24:
        return (levels.to(torch.uint8).permute(0, 2, 3, 1).contiguous(),)
    batch, _, height, width = levels.shape
    red, green, blue = levels.unbind(1)
    luma, u, v = (_bt601_plane(red, green, blue, row) for row in range(3))
    pairs = (
        torch.stack([u, v], 1).reshape(batch, 2, height // 2, 2, width // 2, 2).mean(-1)
    )  # horizontal
    even, odd = pairs[:, :, :, 0], pairs[:, :, :, 1]  # rows 2i and 2i+1: [B, 2, H/2, W/2]
    rows = height // 2
    # rows 2i-1 and 2i+2, the edge rows repeated past the picture (row -1 = row 0, row H = row H-1)
    above = F.pad(odd[:, :, :-1], (0, 0, 1, 0)) + F.pad(even[:, :, :1], (0, 0, 0, rows - 1))
    below = F.pad(even[:, :, 1:], (0, 0, 0, 1)) + F.pad(odd[:, :, -1:], (0, 0, rows - 1, 0))
    taps = CHROMA_VERTICAL_TAPS
    chroma = (taps[0] * above + taps[1] * even + taps[2] * odd + taps[3] * below) / sum(taps)
    return tuple(
        plane.round().clamp(0, 255).to(torch.uint8).contiguous() for plane in (luma, chroma)
    )


def pack_planes(planes: tuple[torch.Tensor, ...], frame_format: str) -> torch.Tensor:
    """The planes of ``levels_to_planes`` as one frame tensor (``frame_shape`` per frame)."""
    if frame_format == RGB24:
        return planes[0]
    luma, chroma = planes
    batch, height, width = luma.shape
    return torch.cat(
        [luma, chroma.reshape(batch, height // 2, width)], dim=1
    )  # U, V: H/2 rows of W bytes


def image_to_frames(image: torch.Tensor, frame_format: str = RGB24) -> torch.Tensor:
    """Decoder images [B,3,H,W] -> uint8 frames of ``frame_format`` (on the same device)."""
    return pack_planes(levels_to_planes(image_levels(image), frame_format), frame_format)


def levels_to_yuv420p(levels: torch.Tensor) -> torch.Tensor:
    """Float RGB levels [B,3,H,W] -> uint8 yuv420p frames [B, H*3/2, W]."""
    return pack_planes(levels_to_planes(levels, YUV420P), YUV420P)
