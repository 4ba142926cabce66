"""Rate-quality of a prompt ladder next to x264, x265, SVT-AV1, the TAESD-latent "VAE" baseline
and two floors of our own: a thumbnail codec at each level's bitrate and the stream's start
latent redrawn for every frame (what a prompt that carries nothing shows).

Every level is regenerated in sequence with the ladder's generator and scored against the
reference frames; each baseline is coded at each level's measured bitrate on the same frames.
Output: ``rate_quality.json``, ``rate_quality.md`` (the table) and ``rate_quality.png``, each
with the notes a reader needs (which generator made the Promptus rows and whether its figures
mean anything, why a VMAF column is missing). VMAF is ``authoring.metrics``' (vmaf-torch,
model vmaf_v0.6.1) over each whole clip, on the device given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from authoring.baselines import CLASSIC_CODECS, CodedClip, VAEBaseline, classic_at, thumbnail_at
from authoring.metrics import psnr_per_frame, ssim_per_frame, vmaf_per_frame
from common.atomic import atomic_write_bytes, atomic_write_json
from prompts.ladder import Ladder

VMAF_NOT_MEASURED = "VMAF: not measured, so the table has no VMAF column: {why}."
VAE_TRIES = 2  # VAE settings decoded per bitrate (each is a full TAESD decode of the clip)


@dataclass(frozen=True)
class RatePoint:
    """One row of the table: a coded version of the reference and its quality."""

    method: str  # "promptus", "x264", "x265", "svt-av1", "vae", "thumbnail", "start-latent"
    setting: str  # level name, CRF, or VAE setting
    kbps: float
    psnr: float
    ssim: float
    vmaf: float | None = None


def score(
    method: str,
    setting: str,
    kbps: float,
    decoded: np.ndarray,
    reference: np.ndarray,
    vmaf_device: str | None,
) -> RatePoint:
    """Quality of one coded version: mean per-frame PSNR, SSIM on luma, and VMAF on
    ``vmaf_device`` (None: not measured)."""
    vmaf = None
    if vmaf_device is not None:
        vmaf = round(float(vmaf_per_frame(decoded, reference, vmaf_device).mean()), 3)
    return RatePoint(
        method=method, setting=setting, kbps=round(kbps, 2),
        psnr=round(float(psnr_per_frame(decoded, reference).mean()), 3),
        ssim=round(float(ssim_per_frame(decoded, reference).mean()), 5), vmaf=vmaf,
    )  # fmt: skip


def score_clip(clip: CodedClip, reference: np.ndarray, vmaf_device: str | None) -> RatePoint:
    """``score`` of a baseline's encode (its codec names the method)."""
    return score(clip.codec, clip.setting, clip.kbps, clip.frames, reference, vmaf_device)


def decode_level(generator: Any, ladder: Ladder, level_id: int) -> np.ndarray:
    """All frames of one level, decoded in sequence as a viewer who never switches sees them."""
    from prompts.chunk import parse_chunk

    stream_info = ladder.manifest.stream
    stream = generator.open_stream(
        width=stream_info.width, height=stream_info.height, init_latent=ladder.init_state(),
        noise_seed=stream_info.noise_seed, prev_latent_weight=stream_info.prev_latent_weight,
        prev_latent_rule=stream_info.prev_latent_rule, generator_id=stream_info.generator_id,
    )  # fmt: skip
    chunks = [
        parse_chunk(ladder.chunk_bytes(level_id, i)) for i in range(ladder.manifest.chunk_count)
    ]
    return np.concatenate([stream.decode_chunk(chunk) for chunk in chunks])


def start_latent_clip(generator: Any, ladder: Ladder, count: int) -> CodedClip:
    """The stream's init latent decoded by the generator and shown for all ``count`` frames: a
    ladder whose prompts carried nothing could do this well. Its bitrate is the init state's
    bytes (sent once) over the clip's duration."""
    import torch

    from engines.colour import RGB24, image_to_frames

    latent = torch.from_numpy(ladder.init_state()).to(generator.device)
    with torch.inference_mode():
        frame = image_to_frames(generator.backend.decode(latent), RGB24)[0].cpu().numpy()
    seconds = count / ladder.manifest.stream.fps
    kbps = len(ladder.init_state_bytes()) * 8 / 1000 / seconds
    return CodedClip(
        "start-latent", "init latent, every frame", kbps, np.repeat(frame[None], count, 0)
    )


def evaluate(
    ladder: Ladder,
    reference: np.ndarray,
    generator: Any,
    *,
    codecs: tuple[str, ...] = tuple(CLASSIC_CODECS),
    taesd: Any = None,
    vmaf_device: str | None = None,
    progress: bool = True,
) -> list[RatePoint]:
    """Rate-quality points of every level and of every baseline at each level's bitrate (VMAF
    on ``vmaf_device``; None: no VMAF)."""
    from tqdm import tqdm

    manifest = ladder.manifest
    fps = manifest.stream.fps
    frames = manifest.chunk_count and manifest.stream.chunk_range(manifest.chunk_count - 1)[1]
    reference = reference[:frames]
    vae = VAEBaseline(taesd, reference, fps) if taesd is not None else None
    points = []
    steps = 1 + len(manifest.levels) * (2 + len(codecs) + (vae is not None))
    with tqdm(total=steps, desc="eval", unit="run", disable=not progress) as bar:
        start = start_latent_clip(generator, ladder, len(reference))
        points.append(score_clip(start, reference, vmaf_device))
        bar.update(1)
        for level in manifest.levels:
            decoded = decode_level(generator, ladder, level.id)
            points.append(
                score("promptus", level.name, level.kbps, decoded, reference, vmaf_device)
            )
            bar.update(1)
            for codec in codecs:
                clip = classic_at(codec, reference, fps, level.kbps)
                points.append(score_clip(clip, reference, vmaf_device))
                bar.update(1)
            thumbnail = thumbnail_at(reference, fps, level.interval, level.kbps)
            points.append(score_clip(thumbnail, reference, vmaf_device))
            bar.update(1)
            if vae is not None:
                clip = vae.at(
                    level.kbps,
                    lambda f: float(psnr_per_frame(f, reference).mean()),
                    tries=VAE_TRIES,
                )
                points.append(score_clip(clip, reference, vmaf_device))
                bar.update(1)
    return points


def table(points: list[RatePoint]) -> str:
    """A Markdown table of the points, grouped by method (a VMAF column when VMAF was measured)."""
    vmaf = any(p.vmaf is not None for p in points)
    lines = [
        "| method | setting | kbps | PSNR dB | SSIM |" + (" VMAF |" if vmaf else ""),
        "|---|---|---:|---:|---:|" + ("---:|" if vmaf else ""),
    ]
    for p in sorted(points, key=lambda p: (p.method != "promptus", p.method, p.kbps)):
        row = f"| {p.method} | {p.setting} | {p.kbps:.1f} | {p.psnr:.2f} | {p.ssim:.4f} |"
        if vmaf:
            row += f" {p.vmaf:.2f} |" if p.vmaf is not None else " - |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def report_notes(
    points: list[RatePoint], generator_notes: list[str], vmaf_missing: str | None = None
) -> list[str]:
    """What a reader of the table must know: the generator's notes, then a missing VMAF column
    and why (``vmaf_missing``)."""
    notes = list(generator_notes)
    if not any(p.vmaf is not None for p in points):
        notes.append(VMAF_NOT_MEASURED.format(why=vmaf_missing or "it was not asked for"))
    return notes


def plot(points: list[RatePoint], title: str, notes: Sequence[str] = ()) -> bytes:
    """PNG of PSNR, SSIM (and VMAF when measured) against kbps, one line per method; ``notes``
    under the axes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("psnr", "PSNR (dB)"), ("ssim", "SSIM (luma)")]
    if any(p.vmaf is not None for p in points):
        metrics.append(("vmaf", "VMAF (vmaf_v0.6.1)"))
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2))
    for method in sorted({p.method for p in points}):
        rows = sorted((p for p in points if p.method == method), key=lambda p: p.kbps)
        for axis, (metric, _) in zip(axes, metrics, strict=True):
            values = [getattr(p, metric) for p in rows]
            axis.plot(
                [p.kbps for p in rows], [np.nan if v is None else v for v in values], marker="o",
                label=method,
            )  # fmt: skip
    for axis, (_, label) in zip(axes, metrics, strict=True):
        axis.set_xlabel("kbps")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(title)
    if notes:
        import textwrap

        text = "\n".join(textwrap.fill(n.replace("`", ""), 150) for n in notes)
        figure.text(0.01, 0.01, text, fontsize=7, va="bottom", ha="left", color="#444")
        figure.tight_layout(rect=(0, 0.036 * (text.count("\n") + 1), 1, 1))
    else:
        figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def write_report(points: list[RatePoint], out: Path, title: str, notes: Sequence[str] = ()) -> None:
    """``rate_quality.{json,md,png}`` in ``out``, each written atomically, each with ``notes``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "rate_quality.json",
        {"title": title, "notes": list(notes), "points": [asdict(p) for p in points]},
    )
    text = f"# {title}\n\n" + "".join(f"{note}\n\n" for note in notes) + table(points)
    atomic_write_bytes(out / "rate_quality.md", text.encode())
    atomic_write_bytes(out / "rate_quality.png", plot(points, title, notes))
