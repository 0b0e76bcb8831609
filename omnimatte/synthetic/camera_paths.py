"""Camera paths: per frame, a similarity transform from the ground (world) to frame
pixels (pan, zoom and roll), and the background each frame sees through it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from omnimatte.synthetic.primitives import transform_point


@dataclass(frozen=True)
class CameraPath:
    """Per frame, the world point at the frame centre, the zoom (world -> frame scale)
    and the roll (radians, a rotation about the optical axis)."""

    centers: np.ndarray  # (T,2) world x, y
    zooms: np.ndarray  # (T,)
    rolls: np.ndarray  # (T,)
    width: int
    height: int

    def matrix(self, t: int) -> np.ndarray:
        """3x3 world -> frame pixel matrix of frame t (pixel centres at integers)."""
        z, roll = float(self.zooms[t]), float(self.rolls[t])
        cx, cy = (float(v) for v in self.centers[t])
        c, s = z * math.cos(roll), z * math.sin(roll)
        return np.array(
            [
                [c, -s, (self.width - 1) / 2 - (c * cx - s * cy)],
                [s, c, (self.height - 1) / 2 - (s * cx + c * cy)],
                [0.0, 0.0, 1.0],
            ]
        )

    def to_world(self, t: int, x: float, y: float) -> tuple[float, float]:
        """The world point seen at frame pixel (x, y) of frame t."""
        return transform_point(np.linalg.inv(self.matrix(t)), x, y)


def moving_camera(
    n_frames: int,
    width: int,
    height: int,
    pan: float = 0.25,
    drift: float = 0.03,
    zoom: tuple[float, float] = (1.0, 1.05),
    roll: tuple[float, float] = (0.0, 0.0),
) -> tuple[CameraPath, tuple[int, int]]:
    """A pan to the right by `pan` frame widths, a gentle vertical drift of `drift`
    heights, a linear zoom and a linear roll (degrees); pan 0, drift 0, zoom (1, 1)
    and roll (0, 0) is a static camera. Returns the path and the (width, height) the
    ground image must have to fill every frame."""
    if min(zoom) <= 0 or pan < 0:
        raise ValueError(f"zoom must be positive and pan non-negative, got zoom {zoom}, pan {pan}")
    margin = 8 + 0.02 * max(width, height)
    # The frame's footprint on the ground, widest at the most tilted roll.
    turns = [math.radians(r) for r in roll]
    view_w = max(width * abs(math.cos(r)) + height * abs(math.sin(r)) for r in turns) / min(zoom)
    view_h = max(width * abs(math.sin(r)) + height * abs(math.cos(r)) for r in turns) / min(zoom)
    ground_w = math.ceil(pan * width + view_w + 2 * margin)
    ground_h = math.ceil(drift * height + view_h + 2 * margin)
    u = np.linspace(0.0, 1.0, n_frames)
    cx = margin + view_w / 2 + pan * width * u
    cy = margin + view_h / 2 + drift * height * np.sin(np.pi * u)
    zooms = zoom[0] + (zoom[1] - zoom[0]) * u
    rolls = turns[0] + (turns[1] - turns[0]) * u
    return CameraPath(np.stack([cx, cy], axis=1), zooms, rolls, width, height), (ground_w, ground_h)


def film_ground(ground: np.ndarray, camera: CameraPath, t: int) -> np.ndarray:
    """The background of frame t: the ground seen through the camera (bilinear, sub-pixel)."""
    return cv2.warpAffine(
        ground, camera.matrix(t)[:2], (camera.width, camera.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
