"""Pack the nano generator's training footage (authoring/nano_training/MANIFEST.json) into one file.

    # SOURCES holds each manifest file as SOURCES/<repo>/<path> (e.g. a clone of each listed
    # repository at the listed commit); sha256 is checked for every file.
    python scripts/prepare_nano_data.py SOURCES --out runs/nano-data/train.npz

Only clips whose role is ``train`` are packed; held-out clips never enter the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from authoring.nano_training.data import (
    HELD_OUT,
    TRAIN,
    center_square,
    decode_frames,
    load_manifest,
    resize_short_side,
    source_file,
    write_frame_pack,
)

TRAINING_SIZE = 192  # short side of the packed frames: the nano generator's native size
HELDOUT_FRAMES = 91  # 3 s at 30 fps plus the closing keyframe: r8n10 in 1 s chunks


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sources", type=Path, help="folder holding <repo>/<path> for every manifest file"
    )
    parser.add_argument("--out", type=Path, required=True, help="frame pack to write (.npz)")
    parser.add_argument(
        "--heldout-out",
        type=Path,
        default=None,
        help="also write the held-out clips' first HELDOUT_FRAMES frames (centred squares) here",
    )
    parser.add_argument("--size", type=int, default=TRAINING_SIZE, help="short side of the frames")
    args = parser.parse_args()
    clips = {}
    for clip in tqdm([c for c in load_manifest() if c.role == TRAIN], desc="clips", unit="clip"):
        frames = decode_frames(source_file(args.sources, clip), clip.start, clip.count)
        clips[clip.id] = resize_short_side(frames, args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_frame_pack(args.out, clips)
    frames = sum(len(f) for f in clips.values())
    print(
        f"{len(clips)} clips, {frames} frames -> {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)"
    )
    if args.heldout_out is not None:
        heldout = {clip.id: center_square(decode_frames(source_file(args.sources, clip), clip.start, HELDOUT_FRAMES), args.size)
                   for clip in load_manifest() if clip.role == HELD_OUT}  # fmt: skip
        write_frame_pack(args.heldout_out, heldout)
        print(f"{len(heldout)} held-out clips -> {args.heldout_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
