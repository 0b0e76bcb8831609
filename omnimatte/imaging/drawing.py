"""What the previews, the overview and the sheets draw: text labels, a checkerboard behind
transparency, and grids of panels. One label style, so every picture the pipeline makes
reads the same."""

from __future__ import annotations

import math

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_PAD = (4, 3)  # the box's margin around a label's text: x, y


def text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int, int]:
    """Width, height above the baseline and depth below it of `text` as draw_label writes it."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    return width, height, baseline


def draw_label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float,
               colour: tuple[int, int, int] = (255, 255, 255), thickness: int = 1,
               box: tuple[int, int, int] | None = (0, 0, 0)) -> int:
    """Write `text` into `image` with its baseline starting at `origin`, on a filled box of colour `box`
    (None: no box, for text on a plain bar) so it reads on any content; returns the text's width."""
    width, height, baseline = text_size(text, scale, thickness)
    if box is not None:
        x, y = origin
        cv2.rectangle(image, (x - LABEL_PAD[0], y - height - LABEL_PAD[1]),
                      (x + width + LABEL_PAD[0], y + baseline + LABEL_PAD[1]), box, cv2.FILLED)
    cv2.putText(image, text, origin, FONT, scale, colour, thickness, cv2.LINE_AA)
    return width


def label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of `image` with `text` in its top-left corner, sized to the image's width."""
    out = image.copy()
    scale = max(0.4, image.shape[1] / 900)
    thickness = 1 if scale < 0.8 else 2
    _, height, _ = text_size(text, scale, thickness)
    draw_label(out, text, (LABEL_PAD[0], height + LABEL_PAD[1]), scale, thickness=thickness)
    return out


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


def tile(panels: list[np.ndarray], columns: int) -> np.ndarray:
    """Arrange equally sized panels in rows of `columns`, padding the last row with black."""
    height, width = panels[0].shape[:2]
    rows = math.ceil(len(panels) / columns)
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for index, panel in enumerate(panels):
        r, c = divmod(index, columns)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = panel
    return grid
