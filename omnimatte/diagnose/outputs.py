"""The diagnose stage's files besides the picture: diagnostics.json, the flagged regions for the overview video,
and the verdict table for the Snakemake report."""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnimatte.diagnose.findings import OK, CheckResult
from omnimatte.io import atomic_path, save_json


def write_report(path: Path, sample: str, verdict: str, summary: str, results: list[CheckResult], measured: dict,
                 shown: list[int]) -> dict:
    """diagnostics.json: the verdict, the one-line summary, what was measured of the clip (noise, flow noise),
    and per check its verdict, findings and per-frame figures; returns what it wrote."""
    report = {"sample": sample, "verdict": verdict, "summary": summary, "measured": measured, "frames_drawn": shown,
              "checks": {result.check: result.as_dict() for result in results}}
    save_json(path, report)
    return report


@dataclass
class FlaggedRegions:
    """Per check that is not ok, its verdict and where it flags each frame ((T, H, W) bool)."""

    verdicts: dict[str, str]
    maps: dict[str, np.ndarray]


def write_flags(path: Path, results: list[CheckResult]) -> None:
    """The flagged regions of the checks that are not ok, packed to bits, as one .npz (the overview reads it)."""
    arrays = {}
    for result in results:
        if result.flagged is not None and result.verdict != OK:
            arrays[f"{result.check}__{result.verdict}"] = np.packbits(result.flagged, axis=-1)
            arrays[f"{result.check}__shape"] = np.array(result.flagged.shape)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_flags(path: Path) -> FlaggedRegions:
    """What write_flags wrote."""
    verdicts, maps = {}, {}
    with np.load(path) as data:
        for key in data.files:
            check, kind = key.split("__")
            if kind == "shape":
                continue
            shape = tuple(data[f"{check}__shape"])
            verdicts[check] = kind
            maps[check] = np.unpackbits(data[key], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
    return FlaggedRegions(verdicts, maps)


def write_table(path: Path, sample: str, verdict: str, summary: str, results: list[CheckResult]) -> None:
    """The report's table: one row per finding with its figure, thresholds, verdict and what it means."""
    colours = {"ok": "#2a9d3a", "warn": "#e0a000", "fail": "#d62828"}
    rows = []
    for result in results:
        for finding in result.findings:
            figure = "" if finding.figure is None or not np.isfinite(finding.figure) else f"{finding.figure:.4g}"
            rows.append(
                f"<tr><td>{html.escape(result.title)}</td><td>{html.escape(finding.name)}</td>"
                f"<td>{html.escape(finding.subject or '')}</td><td>{figure}</td><td>{finding.warn:g}</td>"
                f"<td>{finding.fail:g}</td><td style='color:{colours[finding.verdict]};font-weight:bold'>"
                f"{finding.verdict}</td><td style='text-align:left'>{html.escape(finding.text)}</td></tr>")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(sample)}: diagnostics</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}}</style>
</head><body>
<h3 style="color:{colours[verdict]}">{html.escape(sample)}: {verdict}</h3>
<p>{html.escape(summary)}</p>
<table>
<tr><th>check</th><th>figure</th><th>of</th><th>value</th><th>warn at</th><th>fail at</th><th>verdict</th>
<th>what it means</th></tr>
{chr(10).join(rows)}
</table>
<p>Thresholds are the config's <code>diagnose:</code> settings; a figure graded downwards (an agreement, a mean
alpha) warns at or below its warn value. diagnostics.png shows where each flagged check shows in the frames.</p>
</body></html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(page)
