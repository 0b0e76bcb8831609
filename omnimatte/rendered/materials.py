"""The images the tracer maps onto surfaces: the floor's texture (the synthetic suite's meadow and marble
tiles, or a dark floor with faint texture) and, frame by frame, a pond's water, whose ripples drift and
change shape on their own. All are sRGB uint8, seeded by the scene."""

from __future__ import annotations

import math

import numpy as np

from omnimatte.rendered.scene import Floor, Pond
from omnimatte.synthetic.primitives import fractal_noise
from omnimatte.synthetic.textures import textured_ground, tiled_floor

POND_TEXELS = 256


def floor_texture(floor: Floor, seed: int) -> np.ndarray:
    """The floor's texture, (texels, texels, 3) sRGB uint8."""
    rng = np.random.default_rng(seed)
    n = floor.texels
    if floor.texture == "meadow":
        image = textured_ground(rng, n, n, feature_scale=n / 2048)
    elif floor.texture == "tiles":
        image = tiled_floor(rng, n, n, tile=n / (floor.extent / 0.5))  # half-metre tiles
    else:  # dark: a dark grey-brown floor whose texture is faint and coarse (few corners for ORB)
        shade = 1.0 + 0.12 * fractal_noise(rng, n, n, n / 24, octaves=3)
        image = np.array([0.16, 0.14, 0.12], np.float32) * shade[..., None]
        image += rng.normal(0.0, 0.004, (n, n, 1)).astype(np.float32)
    image = np.clip(image * floor.brightness, 0.0, 1.0)
    return np.rint(image * 255).astype(np.uint8)


def pond_texture(pond: Pond, t: int, seed: int) -> np.ndarray:
    """The pond's water in frame t, (POND_TEXELS, POND_TEXELS, 3) sRGB uint8: several wave trains, each
    drifting its own way at about `pond.speed` texture widths a frame, whose crests catch the light."""
    rng = np.random.default_rng(seed)
    n = POND_TEXELS
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) / n
    height = np.zeros((n, n), np.float32)
    for _ in range(6):
        angle = rng.uniform(0, 2 * math.pi)
        wavelength = rng.uniform(0.06, 0.2)
        speed = pond.speed * rng.uniform(0.6, 1.4)
        k = 2 * math.pi / wavelength
        along = xs * math.cos(angle) + ys * math.sin(angle)
        height += np.sin(k * (along - speed * t) + rng.uniform(0, 2 * math.pi)).astype(np.float32)
    crest = np.clip(height / 3.0, 0.0, 1.0) ** 2
    colour = np.asarray(pond.colour, np.float32)
    image = colour * (0.8 + 0.4 * (height / 6.0 + 0.5))[..., None] + crest[..., None] * np.float32(0.45)
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
