"""Ground textures: the static "world" image a camera path films, detailed enough for
ORB to find corners everywhere (a pebbly meadow, a polished marble floor)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from omnimatte.synthetic.primitives import SHIFT, fixed_point, fractal_noise, smoothstep


def textured_ground(rng: np.random.Generator, width: int, height: int, feature_scale: float = 1.0) -> np.ndarray:
    """A procedural meadow-and-dirt ground, float32 (H,W,3) RGB in [0,1].

    Multi-scale noise for the soil/grass colour, then pebbles with contact shadows and
    highlights and small grass tufts, so feature detectors (ORB) find many corners.
    `feature_scale` scales the size of the details (1.0 suits a 256-px-high frame).
    """
    s = max(feature_scale, 0.25)
    brightness = fractal_noise(rng, width, height, 90 * s)
    grassiness = smoothstep(-0.12, 0.12, fractal_noise(rng, width, height, 120 * s, octaves=4))
    dirt = np.array([0.50, 0.40, 0.29], np.float32)
    grass = np.array([0.33, 0.45, 0.20], np.float32)
    base = dirt + grassiness[..., None] * (grass - dirt)
    base *= (1.0 + 0.9 * brightness)[..., None]
    image = np.clip(base * 255.0, 0, 255).astype(np.uint8)

    area = width * height
    # Pebbles: a dark contact shadow, the stone, a highlight.
    for _ in range(int(area / (200 * s * s))):
        x, y = rng.random() * width, rng.random() * height
        rx = (0.8 + 3.5 * rng.random() ** 2) * s + 0.3
        ry = rx * (0.5 + 0.4 * rng.random())
        angle = float(rng.random() * 180)
        grey = 80 + 100 * rng.random()
        stone = (grey * (1.0 + 0.15 * rng.random()), grey * 0.95, grey * (0.75 + 0.15 * rng.random()))
        dark = tuple(0.35 * c for c in stone)
        light = tuple(min(255.0, 1.25 * c + 20) for c in stone)
        axes = (fixed_point(rx), fixed_point(ry))
        cv2.ellipse(image, (fixed_point(x + 0.35 * rx), fixed_point(y + 0.45 * ry)), axes, angle, 0, 360, dark, -1, cv2.LINE_AA, SHIFT)
        cv2.ellipse(image, (fixed_point(x), fixed_point(y)), axes, angle, 0, 360, stone, -1, cv2.LINE_AA, SHIFT)
        if rx > 1.5:
            small = (fixed_point(0.4 * rx), fixed_point(0.35 * ry))
            cv2.ellipse(image, (fixed_point(x - 0.3 * rx), fixed_point(y - 0.3 * ry)), small, angle, 0, 360, light, -1, cv2.LINE_AA, SHIFT)
    # Grass tufts: a few short blades fanning upwards.
    for _ in range(int(area / (500 * s * s))):
        x, y = rng.random() * width, rng.random() * height
        green = (40 + 60 * rng.random(), 80 + 70 * rng.random(), 25 + 30 * rng.random())
        for _ in range(3 + int(rng.integers(0, 3))):
            angle = -math.pi / 2 + rng.normal(0, 0.45)
            length = (3 + 5 * rng.random()) * s
            tip = (x + length * math.cos(angle), y + length * math.sin(angle))
            cv2.line(image, (fixed_point(x), fixed_point(y)), (fixed_point(tip[0]), fixed_point(tip[1])), green, 1, cv2.LINE_AA, SHIFT)

    ground = image.astype(np.float32) / 255.0
    ground += rng.normal(0.0, 0.025, (height, width, 1)).astype(np.float32)  # fine grain
    return np.clip(ground, 0.0, 1.0)


def tiled_floor(rng: np.random.Generator, width: int, height: int, tile: float) -> np.ndarray:
    """A polished marble floor, float32 (H,W,3) RGB in [0,1]: square tiles `tile` px
    across in two stones laid as a checkerboard, each tile its own shade, with veins
    and dark grout joints (whose crossings give ORB its corners)."""
    tile = max(tile, 6.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    col, row = np.floor(xs / tile).astype(np.int64), np.floor(ys / tile).astype(np.int64)
    shade = 0.86 + 0.14 * rng.random((row.max() + 1, col.max() + 1), dtype=np.float32)
    cream = np.array([0.86, 0.82, 0.74], np.float32)
    slate = np.array([0.46, 0.50, 0.52], np.float32)
    stone = np.where(((col + row) % 2 == 0)[..., None], cream, slate) * shade[row, col][..., None]
    # Veins: thin dark lines where a smooth noise field crosses zero.
    veins = smoothstep(0.03, 0.0, np.abs(fractal_noise(rng, width, height, 0.9 * tile, octaves=4)))
    floor = stone * (1.0 - 0.35 * veins)[..., None]
    floor *= (1.0 + 0.12 * fractal_noise(rng, width, height, 0.4 * tile, octaves=3))[..., None]
    # Grout joints about 1.5 px wide, anti-aliased.
    fx, fy = xs / tile - col, ys / tile - row
    edge = np.minimum(np.minimum(fx, 1 - fx), np.minimum(fy, 1 - fy)) * tile
    grout = smoothstep(1.25, 0.5, edge)
    floor += grout[..., None] * (np.array([0.22, 0.21, 0.20], np.float32) - floor)
    floor += rng.normal(0.0, 0.015, (height, width, 1)).astype(np.float32)  # fine grain
    return np.clip(floor, 0.0, 1.0)
