"""The rendered suite's contact sheet: one still per clip (its middle frame as rendered), each object's
coarse mask outlined in its own colour, the background the camera model cannot explain tinted magenta,
labelled with the clip's name, objects and length above and what it stresses below."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np

from omnimatte.imaging import LABEL_PAD, draw_label, label, text_size, tile
from omnimatte.io import frame_name, load_json, read_png, write_png
from omnimatte.rendered.clip import INFO

OUTLINES = ((255, 64, 64), (64, 200, 255), (255, 220, 64))
COLUMNS = 3


def clip_still(folder: Path) -> np.ndarray:
    """The labelled still of one clip folder."""
    folder = Path(folder)
    info = load_json(folder / INFO)
    t = info["n_frames"] // 2
    still = read_png(folder / "gt" / "frames" / frame_name(t)).astype(np.float32)
    unexplained = read_png(folder / "gt" / "unexplained" / frame_name(t), mode="gray").astype(np.float32) / 255
    still += 0.45 * unexplained[..., None] * (np.array([255, 0, 255], np.float32) - still)
    still = np.clip(still, 0, 255).astype(np.uint8)
    for index, name in enumerate(info["objects"]):
        mask = read_png(folder / "masks" / name / frame_name(t), mode="gray")
        contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(still, contours, -1, OUTLINES[index % len(OUTLINES)], 1, cv2.LINE_AA)
    still = label(still, f"{info['scene']}: {', '.join(info['objects'])}; {info['n_frames']} frames")
    scale = max(0.35, still.shape[1] / 1100)
    lines = textwrap.wrap(info["stresses"], width=max(20, int(still.shape[1] / (19 * scale))))
    _, height, depth = text_size("Ag", scale)
    step = height + depth + 2 * LABEL_PAD[1]
    for i, line in enumerate(reversed(lines)):
        draw_label(still, line, (LABEL_PAD[0], still.shape[0] - depth - LABEL_PAD[1] - i * step), scale)
    return still


def clips_sheet(folders: dict[str, Path], out_path: Path) -> None:
    """Write the contact sheet of the clips (name -> clip folder) to `out_path` (PNG)."""
    stills = [clip_still(folder) for folder in folders.values()]
    height, width = stills[0].shape[:2]
    stills = [s if s.shape[:2] == (height, width) else cv2.resize(s, (width, height), interpolation=cv2.INTER_AREA)
              for s in stills]
    write_png(out_path, tile(stills, min(COLUMNS, len(stills))))
