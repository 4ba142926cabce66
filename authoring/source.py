"""Source video for fitting: any file PyAV reads or a folder of images, centre-cropped and resized."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from common.errors import UserError
from prompts.stream_model import size_problem

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Files a folder source may hold by mistake instead of frames (named in the refusal)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".y4m", ".ts", ".flv")
FILES_NAMED = 3  # of a folder's other files, in the refusal
DEFAULT_FOLDER_FPS = 30.0  # frames per second assumed for a folder of images


def frames_to_tensor(
    frames: np.ndarray | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """``uint8 [B, H, W, 3]`` frames (array or tensor) to float ``[B, 3, H, W]`` in [-1, 1],
    on ``device`` (None: where they are)."""
    import torch

    if not isinstance(frames, torch.Tensor):
        array = np.ascontiguousarray(frames)
        if not array.flags.writeable:  # Ray hands tasks read-only arrays; torch warns on those
            array = array.copy()
        frames = torch.from_numpy(array)
    return frames.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class SourceError(UserError, ValueError):
    """The source cannot be used (unreadable, no frames, bad size)."""


@dataclass(frozen=True)
class SourceVideo:
    """Frames ready for fitting: ``uint8 [T, size, size, 3]`` and their rate."""

    frames: np.ndarray
    fps: float

    def digest(self) -> str:
        """SHA-256 of the frames (identifies the source in checkpoints)."""
        return hashlib.sha256(np.ascontiguousarray(self.frames).tobytes()).hexdigest()


def crop_and_resize(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size x size`` RGB."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.convert("RGB").crop((left, top, left + side, top + side))
    if side != size:
        square = square.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


def check_source_path(path: str | Path) -> Path:
    """``path`` when it names a file or a folder; SourceError at once otherwise (before any
    generator loads)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"source {path} does not exist")
    return path


def _no_frames(folder: Path) -> SourceError:
    """The refusal of a folder without frame images, saying what it holds instead."""
    entries = sorted(folder.iterdir())
    videos = [p.name for p in entries if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    others = [p.name + ("/" if p.is_dir() else "") for p in entries if p.name not in videos]
    head = f"folder {folder} holds no frame images ({', '.join(IMAGE_SUFFIXES)})"
    if not entries:
        return SourceError(f"{head}: it is empty")
    parts = []
    if videos:
        parts.append(f"{len(videos)} video file{'s' * (len(videos) > 1)} ({_some(videos)})")
    if others:
        parts.append(
            f"{len(others)} other entr{'ies' if len(others) > 1 else 'y'} ({_some(others)})"
        )
    advice = f"; pass a video itself as SOURCE: {folder / videos[0]}" if videos else ""
    return SourceError(f"{head}: it holds {' and '.join(parts)}{advice}")


def _some(names: list[str]) -> str:
    more = f", ... {len(names) - FILES_NAMED} more" if len(names) > FILES_NAMED else ""
    return ", ".join(names[:FILES_NAMED]) + more


def _folder_frames(folder: Path, size: int, max_frames: int | None) -> list[np.ndarray]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise _no_frames(folder)
    if max_frames is not None:
        paths = paths[:max_frames]
    frames = []
    for path in paths:
        try:
            with Image.open(path) as image:
                frames.append(crop_and_resize(image, size))
        except OSError as error:
            raise SourceError(f"cannot read frame {path}: {error}") from None
    return frames


def _video_frames(path: Path, size: int, max_frames: int | None) -> tuple[list[np.ndarray], float]:
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SourceError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or DEFAULT_FOLDER_FPS)
            for frame in container.decode(stream):
                frames.append(crop_and_resize(frame.to_image(), size))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as error:
        raise SourceError(f"cannot read video {path}: {error}") from None
    return frames, fps


def load_source(
    path: str | Path, size: int, *, max_frames: int | None = None, fps: float | None = None
) -> SourceVideo:
    """Read ``path`` (video file or image folder) as ``size x size`` frames; SourceError if unusable."""
    path = check_source_path(path)
    problem = size_problem(size, size)
    if problem is not None:
        raise SourceError(problem)
    if max_frames is not None and max_frames < 1:
        raise SourceError(f"--frames must be at least 1, got {max_frames}")
    if path.is_dir():
        frames, rate = _folder_frames(path, size, max_frames), DEFAULT_FOLDER_FPS
    else:
        frames, rate = _video_frames(path, size, max_frames)
    if not frames:
        raise SourceError(f"source {path} has zero frames")
    return SourceVideo(np.stack(frames), float(fps or rate))
