"""What an object does to the scene beyond its coarse mask: a soft cast shadow, a
reflection in a glossy floor, a trailing dust cloud. Each renders, in frame pixels,
a premultiplied colour and an alpha that the object's layer holds under the object."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from omnimatte.synthetic.primitives import transform_point
from omnimatte.synthetic.sprites import SpriteFrame
from omnimatte.synthetic.tracks import Track


@dataclass(frozen=True)
class Placement:
    """An object as drawn in frame t: its pose, sprite px -> frame px, world -> frame px, frame (width, height)."""

    t: int
    sprite: SpriteFrame
    to_frame: np.ndarray
    world_to_frame: np.ndarray
    size: tuple[int, int]

    @property
    def zoom(self) -> float:
        """Frame px per world px."""
        return math.sqrt(abs(np.linalg.det(self.to_frame[:2, :2])))


class Effect(Protocol):
    def render(self, at: Placement) -> tuple[np.ndarray, np.ndarray]:
        """Premultiplied colour (H,W,3) and alpha (H,W) of the effect in frame pixels."""
        ...


@dataclass(frozen=True)
class SoftShadow:
    """A cast shadow: the silhouette flipped about the contact line, squashed and
    sheared onto the ground, blurred more the further it is from the feet, and drawn
    as black with alpha up to `strength` (the fraction by which it darkens the ground).
    Blur sigmas are in world px."""

    strength: float = 0.55
    squash: float = 0.7
    shear: float = 0.9
    blur_near: float = 2.0
    blur_far: float = 7.0

    def render(self, at: Placement) -> tuple[np.ndarray, np.ndarray]:
        """Black, so the colour is zero; the alpha darkens what lies below."""
        sprite, to_frame, size, zoom = at.sprite, at.to_frame, at.size, at.zoom
        u0, v0 = sprite.anchor
        cast = np.array(
            [[1.0, -self.shear, self.shear * v0], [0.0, -self.squash, (1 + self.squash) * v0], [0.0, 0.0, 1.0]]
        )
        silhouette = cv2.warpAffine(sprite.alpha, (to_frame @ cast)[:2], size, flags=cv2.INTER_LINEAR)
        near = cv2.GaussianBlur(silhouette, (0, 0), self.blur_near * zoom)
        far = cv2.GaussianBlur(silhouette, (0, 0), self.blur_far * zoom)
        _, feet_y = transform_point(to_frame, u0, v0)
        reach = max(1.0, self.squash * v0 * zoom)
        t = np.clip((np.arange(size[1], dtype=np.float32) - feet_y) / reach, 0.0, 1.0)[:, None]
        shadow = (near + t * (far - near)) * (self.strength * (1.0 - 0.35 * t))
        return np.zeros((size[1], size[0], 3), np.float32), np.clip(shadow, 0.0, 1.0)


@dataclass(frozen=True)
class Reflection:
    """A mirror image in a glossy floor or still water: the pose flipped about the
    contact line, tinted by the surface, fading out over `reach` of the object's
    height above the ground and softened by `blur` world px."""

    strength: float = 0.5
    reach: float = 1.0
    tint: tuple[float, float, float] = (0.9, 0.93, 0.97)
    blur: float = 1.0

    def render(self, at: Placement) -> tuple[np.ndarray, np.ndarray]:
        sprite = at.sprite
        v0 = sprite.anchor[1]
        rows = np.arange(sprite.alpha.shape[0], dtype=np.float32)
        fade = self.strength * np.clip(1.0 - (v0 - rows) / max(1.0, self.reach * v0), 0.0, 1.0)
        mirror = (at.to_frame @ np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 2.0 * v0], [0.0, 0.0, 1.0]]))[:2]
        tint = np.asarray(self.tint, np.float32)
        premult = cv2.warpAffine(sprite.premult * (fade[:, None, None] * tint), mirror, at.size, flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(sprite.alpha * fade[:, None], mirror, at.size, flags=cv2.INTER_LINEAR)
        sigma = self.blur * at.zoom
        if sigma > 0.3:
            premult = cv2.GaussianBlur(premult, (0, 0), sigma)
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
        return premult, np.clip(alpha, 0.0, 1.0)


@dataclass(frozen=True)
class Puff:
    """One puff of dust: born at frame `birth` at a world point, drifting and growing."""

    birth: int
    origin: tuple[float, float]
    velocity: tuple[float, float]  # world px per frame
    radius: float  # world px at birth (Gaussian sigma)
    growth: float  # world px per frame
    density: float
    colour: np.ndarray  # (3,)
    texture: np.ndarray  # (k,k) lumpiness, stretched over the puff


class DustCloud:
    """Dust kicked up behind a moving object: each frame, puffs are born `offset`
    (in object sizes: behind, up) from its anchor; they drift back and up, grow and
    thin out with a `lifetime` in frames. The densities add up and become alpha by
    Beer-Lambert (1 - exp(-density)), so the cloud is semi-transparent and lags behind
    the object, covering ground its coarse mask never touches."""

    def __init__(self, track: Track, size: float, rng: np.random.Generator, offset: tuple[float, float] = (0.45, 0.04),
                 per_frame: int = 1, lifetime: float = 10.0, density: float = 0.9,
                 colour: tuple[float, float, float] = (0.80, 0.70, 0.55)) -> None:
        self.lifetime = float(lifetime)
        positions = track.positions
        self.puffs: list[Puff] = []
        for t in range(len(positions)):
            step = positions[min(t + 1, len(positions) - 1)] - positions[max(t - 1, 0)]
            ahead = 1.0 if step[0] >= 0 else -1.0
            for _ in range(per_frame):
                x = positions[t][0] - ahead * (offset[0] + 0.05 * rng.normal()) * size
                y = positions[t][1] - (offset[1] + 0.02 * abs(rng.normal())) * size
                velocity = (-ahead * (0.004 + 0.004 * rng.random()) * size, -(0.003 + 0.004 * rng.random()) * size)
                shade = np.asarray(colour, np.float32) * (0.9 + 0.2 * rng.random(dtype=np.float32))
                self.puffs.append(Puff(t, (x, y), velocity, (0.05 + 0.02 * rng.random()) * size,
                                       (0.008 + 0.004 * rng.random()) * size, density * (0.7 + 0.6 * rng.random()),
                                       np.clip(shade, 0, 1), (0.6 + 0.8 * rng.random((5, 5))).astype(np.float32)))

    def render(self, at: Placement) -> tuple[np.ndarray, np.ndarray]:
        width, height = at.size
        density = np.zeros((height, width), np.float32)
        colour = np.zeros((height, width, 3), np.float32)
        for puff in self.puffs:
            age = at.t - puff.birth
            if age < 0 or age > 3 * self.lifetime:
                continue
            x, y = transform_point(at.world_to_frame, puff.origin[0] + puff.velocity[0] * age, puff.origin[1] + puff.velocity[1] * age)
            sigma = (puff.radius + puff.growth * age) * at.zoom
            left, top = math.floor(x - 3 * sigma), math.floor(y - 3 * sigma)
            right, bottom = math.ceil(x + 3 * sigma) + 1, math.ceil(y + 3 * sigma) + 1
            x0, x1, y0, y1 = max(0, left), min(width, right), max(0, top), min(height, bottom)
            if x1 <= x0 or y1 <= y0:
                continue
            xs = (np.arange(x0, x1, dtype=np.float32) - x) / sigma
            ys = (np.arange(y0, y1, dtype=np.float32) - y) / sigma
            strength = puff.density * math.exp(-age / self.lifetime) * min(1.0, (age + 1) / 3)
            lumps = cv2.resize(puff.texture, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
            lumps = lumps[y0 - top:y1 - top, x0 - left:x1 - left]
            blob = strength * np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)) * lumps
            density[y0:y1, x0:x1] += blob
            colour[y0:y1, x0:x1] += blob[..., None] * puff.colour
        alpha = 1.0 - np.exp(-density)
        premult = colour * (alpha / np.maximum(density, 1e-6))[..., None]
        return premult, alpha
