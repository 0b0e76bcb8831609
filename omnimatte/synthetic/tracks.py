"""Tracks: where an object's anchor stands in the world each frame, and its gait phase."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Track:
    """Per frame, the world position of an object's anchor and its gait phase."""

    positions: np.ndarray  # (T,2)
    phases: np.ndarray  # (T,)


def walk_track(start: tuple[float, float], end: tuple[float, float], n_frames: int, stride: float) -> Track:
    """Walk at constant speed from `start` to `end`; the gait advances one cycle per
    `stride` world px, so the feet keep pace with the ground."""
    u = np.linspace(0.0, 1.0, n_frames)[:, None]
    a, b = np.asarray(start, float), np.asarray(end, float)
    positions = a + u * (b - a)
    travelled = np.linalg.norm(positions - a, axis=1)
    return Track(positions, 2 * np.pi * travelled / stride)
