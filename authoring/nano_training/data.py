"""Training footage of the nano generator: the source manifest and the packed frame file.

``MANIFEST.json`` beside this module names every source file (repository, commit, path,
sha256, licence, attribution, the frames used and whether it is trained on). A *frame pack*
is one ``.npz`` (no pickles) holding each training clip's frames as JPEG images whose short
side is the training size, so that a whole data set travels to a GPU machine as a few tens of
MB; training crops squares from them.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = Path(__file__).with_name("MANIFEST.json")
TRAIN, HELD_OUT = "train", "held-out"
JPEG_QUALITY = 90


@dataclass(frozen=True)
class ClipSource:
    """One manifest entry."""

    id: str
    repo: str
    commit: str
    path: str
    sha256: str
    licence: str
    attribution: str
    role: str
    start: int  # first frame used
    count: int  # at most this many frames from ``start``


def load_manifest(path: Path = MANIFEST) -> list[ClipSource]:
    """Every clip of the manifest, in its order."""
    entries = json.loads(Path(path).read_text(encoding="utf-8"))["clips"]
    return [ClipSource(**entry) for entry in entries]


def source_file(root: Path, clip: ClipSource) -> Path:
    """``root/<repo>/<path>``, checked against the manifest's sha256."""
    path = Path(root) / clip.repo / clip.path
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; get {clip.path} from {clip.repo} at {clip.commit}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != clip.sha256:
        raise ValueError(f"{path}: sha256 {digest} differs from the manifest's {clip.sha256}")
    return path


def decode_frames(path: Path, start: int, count: int) -> np.ndarray:
    """``uint8 [T, H, W, 3]``: frames ``start .. start+count-1`` (fewer at the end of the file)."""
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as image:
            frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)]
        return np.stack(frames[start : start + count])
    import av

    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start + count:
                break
            if index >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def resize_short_side(frames: np.ndarray, size: int) -> np.ndarray:
    """Frames scaled (Lanczos) so that the shorter side is ``size`` pixels."""
    from PIL import Image

    height, width = frames.shape[1:3]
    scale = size / min(height, width)
    target = (max(size, round(width * scale)), max(size, round(height * scale)))
    return np.stack(
        [np.asarray(Image.fromarray(f).resize(target, Image.Resampling.LANCZOS)) for f in frames]
    )


def center_square(frames: np.ndarray, size: int) -> np.ndarray:
    """The centred ``size`` x ``size`` square of frames scaled to short side ``size``."""
    scaled = resize_short_side(frames, size)
    height, width = scaled.shape[1:3]
    top, left = (height - size) // 2, (width - size) // 2
    return np.ascontiguousarray(scaled[:, top : top + size, left : left + size])


def _jpeg(frame: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_frame_pack(path: Path, clips: dict[str, np.ndarray]) -> None:
    """Write ``{clip id: uint8 [T, H, W, 3]}`` as one npz of JPEG bytes and offsets."""
    blobs, frame_offsets, clip_ranges = [], [0], []
    for frames in clips.values():
        first = len(frame_offsets) - 1
        for frame in frames:
            blobs.append(_jpeg(frame))
            frame_offsets.append(frame_offsets[-1] + len(blobs[-1]))
        clip_ranges.append((first, len(frame_offsets) - 1))
    np.savez(
        path,
        jpeg=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=np.asarray(frame_offsets, np.int64),
        clips=np.asarray(clip_ranges, np.int64),
        names=np.asarray(list(clips), dtype="U64"),
    )


def read_frame_pack(path: Path) -> dict[str, np.ndarray]:
    """The clips of a frame pack, decoded: ``{clip id: uint8 [T, H, W, 3]}``."""
    from PIL import Image

    with np.load(path, allow_pickle=False) as pack:
        data, offsets = pack["jpeg"], pack["offsets"]
        clips = {}
        for name, (first, end) in zip(pack["names"], pack["clips"], strict=True):
            frames = [
                np.asarray(
                    Image.open(io.BytesIO(data[offsets[i] : offsets[i + 1]].tobytes())).convert(
                        "RGB"
                    )
                )
                for i in range(first, end)
            ]
            clips[str(name)] = np.stack(frames)
    return clips
