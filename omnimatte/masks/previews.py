"""The masks stage's preview: each frame with every object's mask tinted, outlined and labelled."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from omnimatte.imaging import LABEL_PAD, draw_label, text_size

# Colours of the preview overlay, one per object in config order (RGB).
PALETTE: list[tuple[int, int, int]] = [
    (255, 70, 70), (60, 150, 255), (70, 220, 90), (255, 190, 0), (200, 90, 255), (0, 215, 215), (255, 120, 200),
]


def compose_preview(frame: np.ndarray, masks: Sequence[np.ndarray], names: Sequence[str], min_width: int = 320) -> np.ndarray:
    """One preview frame: each mask tinted in its colour, outlined and labelled with its name.

    Small frames are enlarged (nearest) so the labels stay legible.
    """
    scale = max(1, math.ceil(min_width / frame.shape[1]))
    size = (frame.shape[1] * scale, frame.shape[0] * scale)
    out = cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST).astype(np.float32)
    big_masks = [cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) for m in masks]
    for i, mask in enumerate(big_masks):
        colour = np.array(PALETTE[i % len(PALETTE)], np.float32)
        inside = mask.astype(bool)
        out[inside] = 0.55 * out[inside] + 0.45 * colour
    out = out.astype(np.uint8)
    font_scale = max(0.45, size[0] / 1000)
    thickness = max(1, round(font_scale * 2))
    for i, (mask, name) in enumerate(zip(big_masks, names)):
        colour = PALETTE[i % len(PALETTE)]
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, thickness + 1, cv2.LINE_AA)
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        # The name's box sits just above the mask, or just inside its top when there is no room above.
        text_w, text_h, base = text_size(name, font_scale, thickness)
        box_w, box_h = text_w + 2 * LABEL_PAD[0], text_h + base + 2 * LABEL_PAD[1]
        left = int(np.clip(xs.min(), 0, max(0, size[0] - box_w)))
        top = int(ys.min()) - 2 - box_h if ys.min() - 2 - box_h >= 0 else int(ys.min()) + 4
        top = min(top, size[1] - box_h)
        draw_label(out, name, (left + LABEL_PAD[0], top + LABEL_PAD[1] + text_h), font_scale, colour=(0, 0, 0),
                   thickness=thickness, box=colour)
    return out
