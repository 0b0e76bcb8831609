"""The report's figures: contact sheets of the videos, and per-stage runtimes from the benchmark files.

A report page cannot play every video, so each one it shows (the overview, the mask
and flow previews) gets a still of a few frames. Every rule writes
benchmarks/{rule}/{sample}.tsv (wall seconds, CPU seconds, peak memory, ...); this
draws them as one bar chart and one table per sample, so a user sees where the time
went (usually the train stage) and how much memory each stage needed when sizing a
cluster job.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

import cv2
import numpy as np

from omnimatte.errors import StageError
from omnimatte.imaging import draw_label
from omnimatte.io import atomic_path, read_video, write_image
from omnimatte.logs import get_logger

STAGE = "runtimes"
log = get_logger("report")


def contact_sheet(video_path: Path, out_path: Path, count: int = 4, max_width: int = 1400) -> np.ndarray:
    """`count` evenly spaced frames of a video stacked top to bottom, each under a bar with its frame number.

    A still that a report shows in place of the video; frames wider than `max_width`
    are scaled down. Written as JPEG or PNG by the suffix of `out_path`.
    """
    frames = read_video(video_path)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    scale = min(1.0, max_width / frames.shape[2])
    size = (round(frames.shape[2] * scale), round(frames.shape[1] * scale))
    parts = []
    for t in picks:
        bar = np.full((22, size[0], 3), 40, np.uint8)
        draw_label(bar, f"frame {t} of {len(frames)}", (6, 16), 0.5, box=None)
        parts += [bar, cv2.resize(frames[t], size, interpolation=cv2.INTER_AREA)]
    sheet = np.concatenate(parts, axis=0)
    write_image(out_path, sheet)
    log.info("wrote %s (frames %s of %s)", out_path, ", ".join(map(str, picks)), video_path)
    return sheet


def read_benchmark(path: Path) -> dict:
    """The stage (the benchmark's folder name) and the mean of its rows (one per repeat) in `path`."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path} holds no measurements")

    def mean(key: str) -> float | None:
        values = [float(row[key]) for row in rows if row.get(key) not in (None, "", "NA", "-")]
        return sum(values) / len(values) if values else None

    return {"stage": Path(path).parent.name, "seconds": mean("s"), "cpu_seconds": mean("cpu_time"),
            "max_rss_mb": mean("max_rss"), "mean_load": mean("mean_load")}


def run_runtimes(sample: str, benchmark_paths: list[Path], plot_path: Path, table_path: Path) -> list[dict]:
    """Draw the stages' wall times as bars and write them, with CPU time and peak memory, as an HTML table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = []
    for path in benchmark_paths:
        try:
            stages.append(read_benchmark(Path(path)))
        except (OSError, ValueError, KeyError) as err:
            raise StageError(STAGE, sample, f"cannot read benchmark {path}: {err}",
                             f"rerun the stage that writes it (snakemake --forcerun {Path(path).parent.name})") from err
    total = sum(stage["seconds"] or 0.0 for stage in stages)

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(stages) + 1.4), dpi=100)
    names = [stage["stage"] for stage in stages]
    seconds = [stage["seconds"] or 0.0 for stage in stages]
    bars = ax.barh(names, seconds, color="#4c72b0")
    ax.invert_yaxis()  # pipeline order, top to bottom
    for bar, value in zip(bars, seconds):
        ax.annotate(f" {value:.1f} s", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=8)
    ax.set_xlim(0, max(seconds + [1.0]) * 1.15)
    ax.set_xlabel("wall time (s)")
    ax.set_title(f"{sample}: time per stage, {total:.0f} s in all")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(plot_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

    def cell(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    rows = "\n".join(
        f"<tr><td>{html.escape(stage['stage'])}</td><td>{cell(stage['seconds'], 1)}</td>"
        f"<td>{cell(stage['cpu_seconds'], 1)}</td><td>{cell(stage['max_rss_mb'], 0)}</td>"
        f"<td>{cell(stage['mean_load'], 0)}</td></tr>" for stage in stages)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(sample)}: runtimes</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}} td:first-child,th:first-child{{text-align:left}}</style>
</head><body>
<h3>{html.escape(sample)}: runtime per stage</h3>
<table>
<tr><th>stage</th><th>wall s</th><th>CPU s</th><th>peak memory MB</th><th>mean CPU load %</th></tr>
{rows}
<tr><th>total</th><th>{total:.1f}</th><th></th><th></th><th></th></tr>
</table>
<p>From benchmarks/{{rule}}/{html.escape(sample)}.tsv, written by Snakemake for each job. Memory and load are
sampled while a job runs, so jobs of a second or less show little or none.</p>
</body></html>
"""
    with atomic_path(table_path) as tmp:
        tmp.write_text(page)
    log.info("%s: %d stages, %.1f s in all; wrote %s and %s", sample, len(stages), total, plot_path, table_path)
    return stages
