"""What the daemon's H.264 step costs the picture: PSNR lost to encoding, per x264 CRF.

    python scripts/bench_daemon_quality.py --frames ../shared/media/sky \\
        --taesd ../shared/models/taesd --count 10 --json docs/benchmarks/daemon_encode_quality.json

Generated pictures are stood in for by TAESD encode+decode of real frames (TAESD's decoder
is the generator's last stage, so its artefacts are the generated ones; the real SD-Turbo
weights are not available here). For each CRF the generated frames go through the daemon's
muxer and PyAV's decoder, and the table gives PSNR(source, generated), PSNR(source, what
the viewer sees) and their difference: the dB the encode step loses. PSNR(generated,
decoded) is the encoder's own error, with the unavoidable yuv420p conversion in it.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import av
import numpy as np
import torch
from benchkit import command_line
from PIL import Image
from tqdm import tqdm

from client_daemon.muxer import EncoderSettings, H264Muxer
from common.atomic import atomic_write_json
from engines.psnr import frames_psnr_db
from engines.taesd import load_taesd

CRFS = (0, 6, 10, 14, 18, 23)  # x264 constant rate factors compared
FPS = 30


def mean_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([frames_psnr_db(x, y) for x, y in zip(a, b, strict=True)]))


@torch.inference_mode()
def taesd_roundtrip(frames: np.ndarray, taesd: Path) -> np.ndarray:
    """Frames through the TAESD encoder and decoder, one at a time (CPU memory)."""
    autoencoder = load_taesd(taesd, need_encoder=True).float().eval()
    out = []
    for rgb in tqdm(frames, desc="taesd", unit="frame"):
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
        image = autoencoder.decoder(autoencoder.encoder(x))
        out.append(((image.clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy())
    return np.stack(out)


def decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=Path, required=True, help="folder of PNG frames")
    parser.add_argument("--taesd", type=Path, required=True, help="TAESD weights folder")
    parser.add_argument("--count", type=int, default=10, help="frames used (evenly spread)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    paths = sorted(args.frames.glob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG frames in {args.frames}")
    step = max(1, len(paths) // args.count)
    source = np.stack(
        [np.asarray(Image.open(p).convert("RGB")) for p in paths[::step][: args.count]]
    )
    generated = taesd_roundtrip(source, args.taesd)
    base = mean_psnr(source, generated)
    height, width = source.shape[1:3]
    rows = []
    for crf in CRFS:
        muxer = H264Muxer(width, height, FPS, EncoderSettings(crf=crf))
        segment = muxer.media_segment([generated], 0)
        seen = decode(muxer.init_segment() + segment)
        viewer = mean_psnr(source, seen)
        rows.append(
            {
                "crf": crf,
                "psnr_source_generated_db": round(base, 3),
                "psnr_source_viewer_db": round(viewer, 3),
                "loss_db": round(base - viewer, 3),
                "psnr_generated_viewer_db": round(mean_psnr(generated, seen), 2),
                "mbps_at_30fps": round(len(segment) * 8 * FPS / len(generated) / 1e6, 2),
            }
        )
    print(f"{len(source)} frames {width}x{height} from {args.frames}; generated = TAESD round trip")
    print("crf  src-gen dB  src-viewer dB  lost dB  gen-viewer dB  Mbit/s")
    for r in rows:
        print(
            f"{r['crf']:>3}  {r['psnr_source_generated_db']:>10.3f}  {r['psnr_source_viewer_db']:>13.3f}"
            f"  {r['loss_db']:>7.3f}  {r['psnr_generated_viewer_db']:>13.2f}  {r['mbps_at_30fps']:>6.2f}"
        )
    if args.json:
        atomic_write_json(
            args.json,
            {
                "benchmark": "scripts/bench_daemon_quality.py",
                "command": command_line(argv),
                "frames": len(source),
                "size": [width, height],
                "preset": EncoderSettings.preset,
                "default_crf": EncoderSettings.crf,
                "rows": rows,
            },
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
