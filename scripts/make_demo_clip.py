"""Write the demo's shipped clip (promptus/demo_clip/) from its held-out source in the nano manifest.

    python scripts/make_demo_clip.py SOURCES    # SOURCES as for prepare_nano_data.py

The first DEMO_FRAMES frames of the manifest's held-out Caminandes excerpt, the centred square
scaled to 192x192, H.264 (CRF 16, yuv420p) at the source's 24 fps. Its licence and attribution
are in promptus/demo_clip/LICENSE.md; the nano generator never trained on it.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av

from authoring.nano_training.data import (
    HELD_OUT,
    center_square,
    decode_frames,
    load_manifest,
    source_file,
)

DEMO_FRAMES = 90
DEMO_SIZE = 192
DEMO_FPS = 24
CLIP = (
    Path(__file__).resolve().parent.parent / "promptus" / "demo_clip" / "caminandes-llama-192.mp4"
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sources", type=Path, help="folder holding <repo>/<path> for every manifest file"
    )
    args = parser.parse_args()
    clip = next(c for c in load_manifest() if c.role == HELD_OUT)
    frames = center_square(
        decode_frames(source_file(args.sources, clip), clip.start, DEMO_FRAMES), DEMO_SIZE
    )
    with av.open(str(CLIP), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(DEMO_FPS))
        stream.width = stream.height = DEMO_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    print(f"{len(frames)} frames -> {CLIP} ({CLIP.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
