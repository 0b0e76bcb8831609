"""Stage 6: the overview video, omnimatte.mp4.

A labelled grid per frame: the input, the reconstruction, the background and each
object's layer over a checkerboard with its alpha beside it, so a person sees at a
glance what went where.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from omnimatte.contract import OmnimatteFiles
from omnimatte.errors import StageError
from omnimatte.io import list_frames, read_png, read_video, write_image, write_video
from omnimatte.logs import get_logger

STAGE = "composite"
log = get_logger(STAGE)


def checkerboard(height: int, width: int, square: int = 12) -> np.ndarray:
    """A light grey checkerboard, the usual backdrop for showing transparency."""
    ys, xs = np.mgrid[0:height, 0:width]
    light = ((ys // square + xs // square) % 2).astype(bool)
    board = np.full((height, width, 3), 153, np.uint8)
    board[light] = 204
    return board


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """Straight-alpha RGBA shown over a checkerboard."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    board = checkerboard(*rgba.shape[:2]).astype(np.float32)
    return (rgba[..., :3].astype(np.float32) * alpha + board * (1 - alpha) + 0.5).astype(np.uint8)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Write `text` in the top-left corner on a dark strip so it reads on any content."""
    out = image.copy()
    scale = max(0.4, image.shape[1] / 900)
    thickness = 1 if scale < 0.8 else 2
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(out, (0, 0), (w + 8, h + baseline + 6), (0, 0, 0), -1)
    cv2.putText(out, text, (4, h + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def tile(panels: list[np.ndarray], columns: int) -> np.ndarray:
    """Arrange equally sized panels in rows of `columns`, padding the last row with black."""
    height, width = panels[0].shape[:2]
    rows = math.ceil(len(panels) / columns)
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for index, panel in enumerate(panels):
        r, c = divmod(index, columns)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = panel
    return grid


def run_composite(sample: str, frames_dir: Path, omnimatte_dir: Path, object_names: list[str], out_path: Path,
                  fps: float | Fraction, notes: list[str] | None = None) -> int:
    """Write the overview video at the frames' exact rate; `notes` (e.g. 'flow: DIS fallback') are printed under the input."""
    frames = list_frames(frames_dir)
    omnimatte = OmnimatteFiles(Path(omnimatte_dir))
    sources = {"reconstruction": list_frames(omnimatte.reconstruction), "background": list_frames(omnimatte.background)}
    for name in object_names:
        sources[name] = list_frames(omnimatte.layer(name))
    for key, paths in sources.items():
        if len(paths) != len(frames):
            raise StageError(STAGE, sample, f"{len(paths)} '{key}' images for {len(frames)} frames in {omnimatte.folder}",
                             "rerun the train stage (snakemake --forcerun train)")
    columns = max(3, 2 * len(object_names)) if len(object_names) > 1 else 3

    def panels_for(t: int) -> list[np.ndarray]:
        image = label(read_png(frames[t]), "input" + (f"  ({'; '.join(notes)})" if notes else ""))
        panels = [image,
                  label(read_png(sources["reconstruction"][t]), "reconstruction"),
                  label(read_png(sources["background"][t]), "background")]
        while len(panels) % columns:
            panels.append(np.zeros_like(image))
        for name in object_names:
            rgba = read_png(sources[name][t], mode="rgba")
            panels.append(label(over_checkerboard(rgba), f"layer: {name}"))
            panels.append(label(np.repeat(rgba[..., 3:4], 3, axis=2), f"alpha: {name}"))
        return panels

    grids = (tile(panels_for(t), columns) for t in tqdm(range(len(frames)), desc=f"{sample}: composite", unit="frame"))
    count = write_video(out_path, grids, fps)
    log.info("%s: wrote %s (%d frames)", sample, out_path, count)
    return count


def flow_notes(flow_info_path: Path) -> list[str]:
    """A short note for the video when the flow stage fell back from RAFT."""
    info = json.loads(Path(flow_info_path).read_text())
    return [f"flow: {info['method']} fallback"] if info.get("fallback_reason") else []


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
        cv2.putText(bar, f"frame {t} of {len(frames)}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        parts += [bar, cv2.resize(frames[t], size, interpolation=cv2.INTER_AREA)]
    sheet = np.concatenate(parts, axis=0)
    write_image(out_path, sheet)
    log.info("wrote %s (frames %s of %s)", out_path, ", ".join(map(str, picks)), video_path)
    return sheet
