"""Coarse masks as a segmenter gives them, made from an object's true visible coverage by a seeded,
documented perturbation:

1. the object where more than half of a pixel's samples see it (objects in front and props hide it),
2. grown by `mask_grow` px on average (segmenters bleed past an object; negative: they fall short), by an
   amount that varies from frame to frame (sd 0.75 px),
3. with a smooth random wobble along the outline (`mask_wobble` px: Gaussian noise blurred over 4 px and
   scaled to that standard deviation, new every frame: blobby outlines that flicker),
4. sitting off the object by up to `mask_shift` px, a slow drift over the clip (two sines of random phase
   per axis).

The px amounts are for a frame 256 px high and scale with the frame. Every draw comes from one generator
seeded with the scene's seed and the object's index, so the masks are the same on every render.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from omnimatte.rendered.scene import Filming

REFERENCE_HEIGHT = 256
WOBBLE_SCALE = 4.0  # px, the wobble's smoothness
GROW_SD = 0.75  # px, how much the growth varies between frames


def signed_distance(inside: np.ndarray) -> np.ndarray:
    """Distance (float32, px) to the region's edge: positive inside, negative outside."""
    mask = inside.astype(np.uint8)
    inner = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    outer = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    return inner - outer


def _drift(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """(T, 2) offsets in [-1, 1]: per axis a slow sum of two sines of random phase."""
    s = np.linspace(0.0, 1.0, n_frames)[:, None]
    phases = rng.uniform(0, 2 * math.pi, (2, 2))
    waves = 0.6 * np.sin(2 * math.pi * 0.7 * s + phases[0]) + 0.4 * np.sin(2 * math.pi * 1.9 * s + phases[1])
    return waves


def coarse_masks(visible: np.ndarray, filming: Filming, index: int) -> np.ndarray:
    """Coarse masks (T, H, W) uint8 0/255 of an object from its visible coverage (T, H, W) in [0, 1]."""
    n_frames, height, width = visible.shape
    scale = height / REFERENCE_HEIGHT
    rng = np.random.default_rng([filming.seed, 11, index])
    drift = _drift(rng, n_frames) * filming.mask_shift * scale
    masks = np.zeros(visible.shape, np.uint8)
    for t in range(n_frames):
        inside = visible[t] > 0.5
        grow = (filming.mask_grow + rng.normal(0.0, GROW_SD)) * scale
        noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0),
                                 WOBBLE_SCALE * scale)
        wobble = noise / max(float(noise.std()), 1e-9) * filming.mask_wobble * scale
        if not inside.any():
            continue
        shift = np.float32([[1, 0, drift[t, 0]], [0, 1, drift[t, 1]]])
        distance = cv2.warpAffine(signed_distance(inside), shift, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        masks[t] = np.where(distance + grow + wobble > 0, 255, 0).astype(np.uint8)
    return masks
