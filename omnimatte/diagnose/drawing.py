"""diagnostics.png: where and when a clip breaks the method, drawn so a person sees it at a glance.

Top: the verdict of each check. Then a few frames (those where the flagged checks show most,
and evenly spaced ones) with each check's flagged region filled in its colour and the masks
outlined; under each, the residual of the registered background in units of the frame's noise.
Bottom: the per-frame figures against their thresholds, and what the worst findings mean.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from omnimatte.background_fit import BackgroundFit
from omnimatte.diagnose.findings import FAIL, OK, WARN, CheckResult
from omnimatte.diagnose.inputs import SampleInputs
from omnimatte.diagnose.outputs import FlaggedRegions
from omnimatte.io import atomic_path

#: Each check's colour in the frames and the plots (RGB in [0, 1]).
COLOURS = {"camera_model": (0.95, 0.15, 0.1), "moving_background": (0.15, 0.45, 1.0), "exposure": (1.0, 0.6, 0.0),
           "masks": (1.0, 0.9, 0.1), "layers": (0.9, 0.2, 0.9), "seeds": (0.1, 0.9, 0.9)}
VERDICT_COLOURS = {OK: "#2a9d3a", WARN: "#e0a000", FAIL: "#d62828"}
#: The plots of per-frame figures: (check, the series' name or, with a leading "_", the end of each object's
#: series' name, the finding whose thresholds it is graded against, title).
PLOTS = (
    ("camera_model", "unexplained", "unexplained", "unexplained background (share)"),
    ("moving_background", "moving", "moving", "moving background (share)"),
    ("exposure", "brightness", "brightness", "brightness and white balance (relative)"),
    ("masks", "_flow_disagreement", "flow_disagreement", "masks against the flow (share apart)"),
    ("layers", "missed", "missed", "missed by every layer (share)"),
)


def _series_of(result: CheckResult, key: str) -> dict[str, np.ndarray]:
    return {name: values for name, values in result.series.items()
            if name == key or (key.startswith("_") and name.endswith(key))}


def frames_to_show(results: list[CheckResult], count: int, num_frames: int) -> list[int]:
    """The frames to draw: the worst frame of each flagged check first, then evenly spaced ones, in order."""
    chosen: list[int] = []
    for result in results:
        finding = result.worst_finding
        if finding is not None and finding.frames and len(chosen) < count:
            if finding.frames[0] not in chosen:
                chosen.append(finding.frames[0])
    for t in np.linspace(0, num_frames - 1, count + 2).round().astype(int)[1:-1]:
        if len(chosen) >= count:
            break
        if int(t) not in chosen:
            chosen.append(int(t))
    return sorted(chosen[:count])


def overlay(frame: np.ndarray, results: list[CheckResult], masks: list[np.ndarray], t: int) -> np.ndarray:
    """Frame t (H, W, 3) uint8 with each flagged check's region tinted in its colour and the masks outlined."""
    import cv2

    image = frame.astype(np.float32) / 255.0
    for result in reversed(results):  # the background's checks on top
        if result.flagged is None or result.verdict == OK or not result.flagged[t].any():
            continue
        region = result.flagged[t]
        image[region] = 0.45 * image[region] + 0.55 * np.array(COLOURS[result.check])
        outline = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        image[outline] = COLOURS[result.check]
    for mask in masks:
        edge = cv2.morphologyEx(mask[t].astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        image[edge] = 1.0
    return np.clip(image, 0, 1)


def outline_flagged(image: np.ndarray, flags: FlaggedRegions, t: int) -> tuple[np.ndarray, list[str]]:
    """Frame t's image (H, W, 3) uint8 with the regions flagged checks mark outlined in their colour; and the
    names of the checks drawn there, with their verdicts."""
    import cv2

    out = image.copy()
    drawn = []
    for check, regions in flags.maps.items():
        if t >= len(regions) or not regions[t].any():
            continue
        colour = tuple(int(255 * c) for c in COLOURS.get(check, (1.0, 1.0, 1.0)))
        contours, _ = cv2.findContours(regions[t].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, 2 if flags.verdicts[check] == FAIL else 1, cv2.LINE_AA)
        drawn.append(f"{check.replace('_', ' ')} {flags.verdicts[check]}")
    return out, drawn


def draw_diagnostics(path: Path, inputs: SampleInputs, fit: BackgroundFit, results: list[CheckResult], verdict: str,
                     frames_shown: int) -> list[int]:
    """Draw diagnostics.png; returns the frames it shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = frames_to_show(results, frames_shown, inputs.num_frames)
    height, width = inputs.shape
    columns = len(shown)
    panel = 3.6
    image_height = panel * height / width
    by_check = {result.check: result for result in results}
    plots = [p for p in PLOTS if p[0] in by_check and _series_of(by_check[p[0]], p[1])]
    lines = [f for r in results for f in r.findings if f.verdict != OK]
    text_height = 0.25 + 0.17 * sum(len(textwrap.wrap(f"{f.check}: {f.text}", 170)) for f in lines[:8])
    heights = [0.6, image_height, image_height, 1.9, text_height]
    fig = plt.figure(figsize=(panel * columns, sum(heights) + 0.6), dpi=100)
    grid = fig.add_gridspec(5, max(columns, len(plots), 1), height_ratios=heights, hspace=0.35, wspace=0.06)

    head = fig.add_subplot(grid[0, :])
    head.axis("off")
    head.text(0.0, 0.95, f"{inputs.sample}: {verdict.upper()}", fontsize=15, fontweight="bold", va="top",
              color=VERDICT_COLOURS[verdict], transform=head.transAxes)
    for index, result in enumerate(results):
        x = index / len(results)
        label = f"{result.title}: {result.verdict}"
        head.add_patch(plt.Rectangle((x, 0.12), 0.012, 0.3, color=COLOURS[result.check], transform=head.transAxes))
        head.text(x + 0.017, 0.27, label, color=VERDICT_COLOURS[result.verdict], fontsize=8, va="center",
                  transform=head.transAxes)

    masks = list(inputs.masks.values())
    residual_scale = max(2 * fit.settings.residual_threshold, 1.0)
    residual_axes = []
    for column, t in enumerate(shown):
        top = fig.add_subplot(grid[1, column])
        top.imshow(overlay(inputs.frames[t], results, masks, t))
        top.set_title(f"frame {t}", fontsize=9)
        top.axis("off")
        bottom = fig.add_subplot(grid[2, column])
        shown_residual = bottom.imshow(np.where(fit.free[t], fit.residual[t], np.nan), cmap="inferno", vmin=0,
                                       vmax=residual_scale)
        bottom.set_title("background residual (noise units)", fontsize=8)
        bottom.axis("off")
        residual_axes.append(bottom)
    if shown:
        fig.colorbar(shown_residual, ax=residual_axes, fraction=0.01, pad=0.01)

    for column, (check, key, graded_by, title) in enumerate(plots):
        axis = fig.add_subplot(grid[3, column])
        result = by_check[check]
        for name, values in _series_of(result, key).items():
            axis.plot(values, lw=1.2, label=name[: -len(key)] if key.startswith("_") else None)
        finding = next((f for f in result.findings if f.name == graded_by), None)
        if finding is not None:
            centre = 1.0 if check == "exposure" else 0.0  # brightness is graded by its distance from 1
            for level, colour in ((finding.warn, VERDICT_COLOURS[WARN]), (finding.fail, VERDICT_COLOURS[FAIL])):
                axis.axhline(centre + level, color=colour, lw=0.8, ls="--")
                if check == "exposure":
                    axis.axhline(centre - level, color=colour, lw=0.8, ls="--")
        if check == "exposure":
            for channel in ("red", "green", "blue"):
                axis.plot(result.series[f"white_balance_{channel}"], lw=0.8, color=channel, alpha=0.7)
        if key.startswith("_") and len(_series_of(result, key)) > 1:
            axis.legend(fontsize=6)
        axis.set_title(title, fontsize=8)
        axis.set_xlabel("frame", fontsize=7)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        for t in shown:
            axis.axvline(t, color="0.6", lw=0.6)

    notes = fig.add_subplot(grid[4, :])
    notes.axis("off")
    text = "\n".join("\n".join(textwrap.wrap(f"{f.verdict.upper()} {f.check}" + (f" [{f.subject}]" if f.subject else "")
                                             + f": {f.text}", 170)) for f in lines[:8])
    notes.text(0.0, 1.0, text or "Every check is ok: nothing in this clip breaks the method's assumptions.",
               fontsize=8, va="top", family="monospace", transform=notes.transAxes)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return shown
