"""``promptus catalog``: fit a ladder for each of many titles, segment by segment, on a cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from promptus.errors import EXIT_USER_ERROR, CommandError, report
from promptus.options import add_levels_option, levels_from_args

if TYPE_CHECKING:
    from authoring.catalog import TitleReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from promptus.fitting import add_fit_arguments

    add_fit_arguments(parser, sources="many")
    add_levels_option(parser)


def title_names(sources: list[str]) -> list[str]:
    """One directory name per source: its file stem or folder name, made unique."""
    names: list[str] = []
    for source in sources:
        path = Path(source)
        base = (path.stem if path.suffix else path.name) or "title"
        base = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base).lstrip(".")
        name, n = base or "title", 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def summary_table(reports: list[TitleReport]) -> str:
    """Title, levels, kbps per level, mean PSNR, task seconds, status."""
    rows = [("title", "levels", "kbps", "PSNR dB", "GPU-s", "status")]
    for item in reports:
        manifest = item.manifest
        if manifest is None:
            rows.append((item.name, "-", "-", "-", f"{item.task_seconds:.1f}", "failed"))
            continue
        psnrs = [c.psnr for lv in manifest.levels for c in lv.chunks if c.psnr is not None]
        rows.append(
            (
                item.name,
                str(len(manifest.levels)),
                "/".join(f"{lv.kbps:.1f}" for lv in manifest.levels),
                f"{sum(psnrs) / len(psnrs):.2f}" if psnrs else "n/a",
                f"{item.task_seconds:.1f}",
                f"ok ({item.segments} segments)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def run(args: argparse.Namespace) -> int:
    from authoring.catalog import TitleJob
    from authoring.jobs import fit_titles
    from promptus.fitting import fit_job

    job = fit_job(args, levels_from_args(args))
    titles = [
        TitleJob(name, Path(source), args.out / name)
        for name, source in zip(title_names(args.sources), args.sources, strict=True)
    ]
    reports = fit_titles(titles, job)
    print(summary_table(reports))
    sys.stdout.flush()
    failed = [item for item in reports if not item.ok]
    for item in failed:
        report("catalog", CommandError(item.error))
    return EXIT_USER_ERROR if failed else 0
