"""Small helpers the textures, sprites, camera and effects share: points through 3x3
matrices (translations come from omnimatte.camera), smoothstep, value noise and cv2's fixed-point drawing coordinates."""

from __future__ import annotations

import math

import cv2
import numpy as np

SHIFT = 4  # fixed-point bits for sub-pixel cv2 drawing
_ONE = 1 << SHIFT


def transform_point(matrix: np.ndarray, x: float, y: float) -> tuple[float, float]:
    px, py, pw = matrix @ np.array([x, y, 1.0])
    return float(px / pw), float(py / pw)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def value_noise(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Smooth value noise in [0,1] with features about `cell` px across."""
    gw = max(2, math.ceil(width / max(cell, 1.0)) + 1)
    gh = max(2, math.ceil(height / max(cell, 1.0)) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def fractal_noise(rng: np.random.Generator, width: int, height: int, cell: float, octaves: int = 5) -> np.ndarray:
    """Sum of value-noise octaves (cell, cell/2, ...), roughly zero mean and unit range."""
    total = np.zeros((height, width), np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amplitude * (value_noise(rng, width, height, cell) - 0.5)
        norm += amplitude
        amplitude *= 0.55
        cell /= 2.0
    return total / norm


def fixed_point(value: float) -> int:
    """A coordinate in cv2's fixed-point drawing units."""
    return int(np.rint(value * _ONE))
