"""Synthetic clips with exact ground-truth layers: the offline demo and the benchmark.

A clip is built from reusable parts:

* a ground texture (a large static "world" image: pebbly meadow, marble tiles),
* a camera path (per frame, a similarity transform from world to frame pixels: pan,
  zoom and roll, or none; the background of frame t is the ground seen through it),
* object sprites drawn procedurally in their own pixel grid (a dog, a walker, a car,
  a ball) and placed on the ground by a track (a world position and a gait phase
  per frame),
* the effects each object has on the scene, which its coarse mask does not cover:
  a soft cast shadow, a reflection in a glossy floor, a trailing dust cloud.

A preset puts these together (see ``PRESETS``). Ground truth is exact by
construction: each object's layer is its sprite composited over its effects (one
straight-alpha RGBA image), and the frame is every quantized layer composited "over"
the quantized background, back to front::

    frame = a * rgb + (1 - a) * background

so ``frames`` matches the stored layers and background to within rounding (0.5 level).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from omnimatte.camera import translation
from omnimatte.imaging import to_uint8
from omnimatte.io import save_json, write_frames, write_video
from omnimatte.logs import get_logger

MIN_FRAMES = 8
MIN_SIZE = 64
MAX_SIZE = 4096
SIZE_MULTIPLE = 16

_SHIFT = 4  # fixed-point bits for sub-pixel cv2 drawing
_ONE = 1 << _SHIFT


# --------------------------------------------------------------------------- clip


@dataclass
class Clip:
    """A rendered clip and its ground truth (all uint8 arrays, T frames of H x W).

    frames:      (T,H,W,3) the composite the pipeline sees.
    background:  (T,H,W,3) the clean plate of each frame.
    layers:      object -> (T,H,W,4) RGBA, straight alpha: the object and its effect.
    effects:     object -> (T,H,W) alpha of the effects alone, where the object's own
                 alpha is ~0 (what a method must add beyond the object to be complete).
    masks:       object -> (T,H,W) coarse masks 0/255: the visible part of the object
                 (objects in front hide it) dilated a few px, excluding its effects.
    object_names: layer order, back to front.
    camera:      (T,3,3) world -> frame matrices of the virtual camera.
    """

    frames: np.ndarray
    background: np.ndarray
    layers: dict[str, np.ndarray]
    effects: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    fps: float
    object_names: list[str]
    preset: str = "dog"
    seed: int = 0
    camera: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


# ------------------------------------------------------------------- small helpers


def _apply(matrix: np.ndarray, x: float, y: float) -> tuple[float, float]:
    px, py, pw = matrix @ np.array([x, y, 1.0])
    return float(px / pw), float(py / pw)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _noise(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Smooth value noise in [0,1] with features about `cell` px across."""
    gw = max(2, math.ceil(width / max(cell, 1.0)) + 1)
    gh = max(2, math.ceil(height / max(cell, 1.0)) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _fractal_noise(rng: np.random.Generator, width: int, height: int, cell: float, octaves: int = 5) -> np.ndarray:
    """Sum of value-noise octaves (cell, cell/2, ...), roughly zero mean and unit range."""
    total = np.zeros((height, width), np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amplitude * (_noise(rng, width, height, cell) - 0.5)
        norm += amplitude
        amplitude *= 0.55
        cell /= 2.0
    return total / norm


def _fx(value: float) -> int:
    """A coordinate in cv2's fixed-point drawing units."""
    return int(np.rint(value * _ONE))


# ---------------------------------------------------------------------- the ground


def textured_ground(rng: np.random.Generator, width: int, height: int, feature_scale: float = 1.0) -> np.ndarray:
    """A procedural meadow-and-dirt ground, float32 (H,W,3) RGB in [0,1].

    Multi-scale noise for the soil/grass colour, then pebbles with contact shadows and
    highlights and small grass tufts, so feature detectors (ORB) find many corners.
    `feature_scale` scales the size of the details (1.0 suits a 256-px-high frame).
    """
    s = max(feature_scale, 0.25)
    brightness = _fractal_noise(rng, width, height, 90 * s)
    grassiness = _smoothstep(-0.12, 0.12, _fractal_noise(rng, width, height, 120 * s, octaves=4))
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
        axes = (_fx(rx), _fx(ry))
        cv2.ellipse(image, (_fx(x + 0.35 * rx), _fx(y + 0.45 * ry)), axes, angle, 0, 360, dark, -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(image, (_fx(x), _fx(y)), axes, angle, 0, 360, stone, -1, cv2.LINE_AA, _SHIFT)
        if rx > 1.5:
            small = (_fx(0.4 * rx), _fx(0.35 * ry))
            cv2.ellipse(image, (_fx(x - 0.3 * rx), _fx(y - 0.3 * ry)), small, angle, 0, 360, light, -1, cv2.LINE_AA, _SHIFT)
    # Grass tufts: a few short blades fanning upwards.
    for _ in range(int(area / (500 * s * s))):
        x, y = rng.random() * width, rng.random() * height
        green = (40 + 60 * rng.random(), 80 + 70 * rng.random(), 25 + 30 * rng.random())
        for _ in range(3 + int(rng.integers(0, 3))):
            angle = -math.pi / 2 + rng.normal(0, 0.45)
            length = (3 + 5 * rng.random()) * s
            tip = (x + length * math.cos(angle), y + length * math.sin(angle))
            cv2.line(image, (_fx(x), _fx(y)), (_fx(tip[0]), _fx(tip[1])), green, 1, cv2.LINE_AA, _SHIFT)

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
    veins = _smoothstep(0.03, 0.0, np.abs(_fractal_noise(rng, width, height, 0.9 * tile, octaves=4)))
    floor = stone * (1.0 - 0.35 * veins)[..., None]
    floor *= (1.0 + 0.12 * _fractal_noise(rng, width, height, 0.4 * tile, octaves=3))[..., None]
    # Grout joints about 1.5 px wide, anti-aliased.
    fx, fy = xs / tile - col, ys / tile - row
    edge = np.minimum(np.minimum(fx, 1 - fx), np.minimum(fy, 1 - fy)) * tile
    grout = _smoothstep(1.25, 0.5, edge)
    floor += grout[..., None] * (np.array([0.22, 0.21, 0.20], np.float32) - floor)
    floor += rng.normal(0.0, 0.015, (height, width, 1)).astype(np.float32)  # fine grain
    return np.clip(floor, 0.0, 1.0)


# ---------------------------------------------------------------------- the camera


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
        return _apply(np.linalg.inv(self.matrix(t)), x, y)


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


# ---------------------------------------------------------------------- sprites


@dataclass
class SpriteFrame:
    """One rendered pose: premultiplied RGB and alpha in the sprite's own pixel grid,
    and the ground-contact point (anchor) in that grid."""

    premult: np.ndarray  # (h,w,3) float32
    alpha: np.ndarray  # (h,w) float32
    anchor: tuple[float, float]


class Sprite(Protocol):
    def render(self, phase: float) -> SpriteFrame: ...


class _Painter:
    """Paints opaque anti-aliased shapes, back to front, onto a supersampled canvas.

    Shapes are given in body units (x forward, y up, origin at the anchor)."""

    def __init__(self, width: int, height: int, anchor: tuple[float, float], unit: float) -> None:
        self.width, self.height = width, height
        self.anchor, self.unit = anchor, unit
        self.premult = np.zeros((height, width, 3), np.float32)
        self.alpha = np.zeros((height, width), np.float32)

    @classmethod
    def supersampled(cls, width: int, height: int, anchor: tuple[float, float], unit: float, ss: int) -> "_Painter":
        """A canvas `ss` times finer than a width x height sprite grid whose anchor and unit are given in sprite px."""
        return cls(width * ss, height * ss, (anchor[0] * ss + (ss - 1) / 2, anchor[1] * ss + (ss - 1) / 2), unit * ss)

    def downsampled(self, width: int, height: int, anchor: tuple[float, float]) -> SpriteFrame:
        """The painting averaged down to the width x height sprite grid."""
        premult = cv2.resize(self.premult, (width, height), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(self.alpha, (width, height), interpolation=cv2.INTER_AREA)
        return SpriteFrame(premult, alpha, anchor)

    def px(self, x: float, y: float) -> tuple[int, int]:
        return _fx(self.anchor[0] + x * self.unit), _fx(self.anchor[1] - y * self.unit)

    def _blank(self) -> np.ndarray:
        return np.zeros((self.height, self.width), np.uint8)

    def _paint(self, mask: np.ndarray, colour: np.ndarray) -> None:
        m = mask.astype(np.float32) * (1.0 / 255.0)
        self.premult += m[..., None] * (colour - self.premult)
        self.alpha += m * (1.0 - self.alpha)

    def shapes(
        self,
        colour: np.ndarray,
        ellipses: Sequence[tuple[float, float, float, float, float]] = (),
        limbs: Sequence[tuple[Sequence[tuple[float, float]], float]] = (),
        polygons: Sequence[Sequence[tuple[float, float]]] = (),
    ) -> None:
        """Paint the union of some shapes in one colour (an RGB triple or an image).

        ellipses: (x, y, rx, ry, angle_deg); limbs: (points, width); polygons: points.
        """
        mask = self._blank()
        u = self.unit
        for x, y, rx, ry, angle in ellipses:
            axes = (max(1, _fx(rx * u)), max(1, _fx(ry * u)))
            cv2.ellipse(mask, self.px(x, y), axes, angle, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
        for points, width in limbs:
            thickness = max(1, int(np.rint(width * u)))
            for a, b in itertools.pairwise(points):
                cv2.line(mask, self.px(*a), self.px(*b), 255, thickness, cv2.LINE_AA, _SHIFT)
        for points in polygons:
            pts = np.array([self.px(*p) for p in points], np.int32)
            cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, _SHIFT)
        self._paint(mask, colour)


class DogSprite:
    """A side-view dog walking to the right, `length` world px from rump to chest.

    Body, chest, haunch, neck, head, muzzle, ears, a wagging tail and four legs that
    swing with the gait phase; the coat is a fixed fur texture (tan with a darker
    saddle, a cream belly and short strokes) in the sprite's own grid.
    """

    def __init__(self, length: float, rng: np.random.Generator, supersample: int = 2) -> None:
        self.length = float(length)
        self.ss = int(supersample)
        self.width = math.ceil(2.0 * length) + 4
        self.height = math.ceil(1.4 * length) + 4
        self.anchor = (0.95 * length + 2, 1.22 * length + 2)  # feet point, sprite px
        self.coat, self.leg_coat = self._make_coat(rng)

    def _make_coat(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The body coat and the leg coat (no cream belly band, white socks), supersampled."""
        ss = self.ss
        w, h = self.width * ss, self.height * ss
        unit = self.length * ss
        ay = self.anchor[1] * ss + (ss - 1) / 2
        yy = (ay - np.arange(h, dtype=np.float32))[:, None] / unit  # body units, up
        yy = np.broadcast_to(yy, (h, w))
        tan = np.array([0.78, 0.55, 0.30], np.float32) * (0.92 + 0.16 * rng.random(3).astype(np.float32))
        cream = np.array([0.93, 0.85, 0.70], np.float32)
        dark = np.array([0.36, 0.22, 0.12], np.float32)
        belly = _smoothstep(0.52, 0.40, yy)
        socks = _smoothstep(0.07, 0.03, yy)
        saddle = _smoothstep(0.64, 0.72, yy) * _smoothstep(-0.1, 0.15, _fractal_noise(rng, w, h, 0.35 * unit, 3))
        body = tan + belly[..., None] * (cream - tan)
        body = body + (0.8 * saddle)[..., None] * (dark - body)
        legs = tan + socks[..., None] * (cream - tan)
        fur = 1.0 + 0.35 * _fractal_noise(rng, w, h, 0.2 * unit, 4)
        # Fur strokes, flowing backwards and down, lighter and darker than the coat.
        strokes = np.full((h, w), 128, np.uint8)
        stroke_len = max(2.0, 0.05 * unit)
        for _ in range(w * h // 25):
            x, y = rng.random() * w, rng.random() * h
            angle = math.radians(200 + rng.normal(0, 15))
            tip = (x + stroke_len * math.cos(angle), y - stroke_len * math.sin(angle))
            shade = int(128 + rng.choice([-1, 1]) * (30 + 50 * rng.random()))
            cv2.line(strokes, (_fx(x), _fx(y)), (_fx(tip[0]), _fx(tip[1])), shade, 1, cv2.LINE_AA, _SHIFT)
        fur = (fur * (0.55 + strokes.astype(np.float32) / 290.0))[..., None]
        return np.clip(body * fur, 0.0, 1.0), np.clip(legs * fur, 0.0, 1.0)

    def _leg(self, hip: tuple[float, float], swing: float, lift: float, hind: bool) -> list[tuple[float, float]]:
        """Hip, knee (or hock) and paw of one leg, in body units."""
        if hind:
            upper, lower = 0.23, 0.25
            a1, a2 = swing + 0.30, swing - 0.35 - 0.6 * lift
        else:
            upper, lower = 0.21, 0.23
            a1, a2 = swing, swing - 0.9 * lift
        knee = (hip[0] + upper * math.sin(a1), hip[1] - upper * math.cos(a1))
        paw = (knee[0] + lower * math.sin(a2), knee[1] - lower * math.cos(a2))
        return [hip, knee, paw]

    def render(self, phase: float) -> SpriteFrame:
        """The dog at gait phase `phase` (radians; one stride per 2*pi)."""
        p = _Painter.supersampled(self.width, self.height, self.anchor, self.length, self.ss)
        coat, leg_coat = self.coat, self.leg_coat
        b = 0.012 * math.cos(2 * phase)  # body bob

        def legs(far: bool) -> list[tuple[list[tuple[float, float]], float]]:
            shapes = []
            for hip_x, hind, offset in ((0.30, False, 0.5 * math.pi), (-0.30, True, 0.0)):
                off = offset + (math.pi if far else 0.0)
                swing = 0.42 * math.sin(phase + off)
                lift = max(0.0, math.cos(phase + off))
                hip = (hip_x + (0.05 if far else 0.0), 0.44 + b)
                pts = self._leg(hip, swing, lift, hind)
                shapes.append((pts[:2], 0.11))
                shapes.append((pts[1:], 0.075))
                shapes.append(([pts[2], (pts[2][0] + 0.045, pts[2][1] + 0.005)], 0.07))  # paw
            return shapes

        # Far side first (darker), then tail, body, near legs, head details.
        p.shapes(leg_coat * 0.62, limbs=legs(far=True))
        wag = math.radians(18) * math.sin(2 * phase)
        tail = [(-0.45, 0.64 + b)]
        for i in range(5):
            angle = math.radians(145 - 14 * i) + wag
            x, y = tail[-1]
            tail.append((x + 0.075 * math.cos(angle), y + 0.075 * math.sin(angle)))
        p.shapes(coat * 0.9, limbs=[(tail[:3], 0.075), (tail[2:], 0.05)])
        p.shapes(coat * 0.55, polygons=[[(0.50, 0.95 + b), (0.52, 1.12 + b), (0.60, 0.98 + b)]])  # far ear
        p.shapes(
            coat,
            ellipses=[
                (0.0, 0.59 + b, 0.46, 0.165, 0),  # body
                (0.30, 0.57 + b, 0.19, 0.19, 0),  # chest
                (-0.31, 0.59 + b, 0.18, 0.19, 0),  # haunch
                (0.60, 0.87 + b, 0.15, 0.12, 0),  # skull
                (0.76, 0.825 + b, 0.12, 0.065, 8),  # muzzle
            ],
            limbs=[([(0.32, 0.62 + b), (0.55, 0.84 + b)], 0.2)],  # neck
        )
        p.shapes(leg_coat * 0.95, limbs=legs(far=False))
        p.shapes(np.array([0.75, 0.10, 0.08], np.float32), limbs=[([(0.36, 0.66 + b), (0.48, 0.78 + b)], 0.04)])  # collar
        p.shapes(coat * 0.6, polygons=[[(0.56, 0.93 + b), (0.60, 1.10 + b), (0.67, 0.95 + b)]])  # near ear
        black = np.array([0.06, 0.05, 0.05], np.float32)
        p.shapes(black, ellipses=[(0.875, 0.84 + b, 0.032, 0.026, 0), (0.66, 0.905 + b, 0.022, 0.02, 0)])  # nose, eye
        return p.downsampled(self.width, self.height, self.anchor)


class WalkerSprite:
    """A side-view person walking to the right, `height` world px from soles to crown.

    Legs and arms swing in opposition with the gait phase and bend at the knee and
    elbow; a striped shirt, denim trousers, skin, hair and shoes, each with its own
    texture in the sprite's grid; the far-side limbs are drawn darker, behind the body.
    """

    def __init__(self, height: float, rng: np.random.Generator, shirt: tuple[float, float, float],
                 supersample: int = 2) -> None:
        self.size = float(height)
        self.ss = int(supersample)
        self.width = math.ceil(0.8 * height) + 4
        self.height = math.ceil(1.07 * height) + 4
        self.anchor = (0.4 * height + 2, 1.01 * height + 2)
        self.shirt, self.trousers = self._make_cloth(rng, np.asarray(shirt, np.float32))
        self.skin = np.array([0.87, 0.66, 0.52], np.float32) * (0.8 + 0.2 * rng.random(dtype=np.float32))

    def _make_cloth(self, rng: np.random.Generator, shirt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ss = self.ss
        w, h = self.width * ss, self.height * ss
        unit = self.size * ss
        rows = np.arange(h, dtype=np.float32)[:, None] / unit
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * rows / 0.045)
        weave = 1.0 + 0.12 * _fractal_noise(rng, w, h, 0.05 * unit, 3)
        cloth = shirt * (0.78 + 0.3 * _smoothstep(0.3, 0.7, np.broadcast_to(stripes, (h, w))))[..., None]
        denim = np.array([0.20, 0.28, 0.48], np.float32) * (1.0 + 0.25 * _fractal_noise(rng, w, h, 0.02 * unit, 3))[..., None]
        return np.clip(cloth * weave[..., None], 0, 1), np.clip(denim, 0, 1)

    @staticmethod
    def _limb(root: tuple[float, float], first: float, second: float, a1: float, a2: float) -> list[tuple[float, float]]:
        """Root, joint and end of a two-segment limb hanging down at angles a1, a2 (0 = straight down, + = forward)."""
        joint = (root[0] + first * math.sin(a1), root[1] - first * math.cos(a1))
        return [root, joint, (joint[0] + second * math.sin(a2), joint[1] - second * math.cos(a2))]

    def render(self, phase: float) -> SpriteFrame:
        """The walker at gait phase `phase` (radians; one stride of both legs per 2*pi)."""
        p = _Painter.supersampled(self.width, self.height, self.anchor, self.size, self.ss)
        b = 0.012 * abs(math.cos(phase))  # the body rises as the legs pass each other
        shoe = np.array([0.12, 0.10, 0.10], np.float32)

        def limbs(side: float, dim: float) -> None:
            """One side's leg (with its shoe) and arm; `side` offsets the gait phase, `dim` shades the far side."""
            swing = 0.42 * math.sin(phase + side)
            bend = 0.75 * max(0.0, math.sin(phase + side + 0.5 * math.pi))
            leg = self._limb((0.0, 0.50 + b), 0.255, 0.245, swing, swing - bend)
            p.shapes(self.trousers * dim, limbs=[(leg[:2], 0.08), (leg[1:], 0.065)])
            p.shapes(shoe * dim, limbs=[([leg[2], (leg[2][0] + 0.07, leg[2][1] + 0.005)], 0.045)])
            swing = -0.38 * math.sin(phase + side)
            arm = self._limb((0.01, 0.80 + b), 0.165, 0.155, swing, swing + 0.35 + 0.2 * max(0.0, swing))
            p.shapes(self.shirt * dim, limbs=[(arm[:2], 0.055)])
            p.shapes(self.skin * dim, limbs=[(arm[1:], 0.045)])

        limbs(math.pi, 0.62)  # the far side, behind the body
        p.shapes(self.trousers, ellipses=[(0.0, 0.52 + b, 0.085, 0.065, 0)])  # hips
        p.shapes(self.shirt, ellipses=[(0.012, 0.665 + b, 0.09, 0.155, 0)])  # torso
        p.shapes(self.skin, limbs=[([(0.012, 0.80 + b), (0.02, 0.87 + b)], 0.05)])  # neck
        p.shapes(self.skin, ellipses=[(0.035, 0.915 + b, 0.058, 0.07, 0)])  # head
        p.shapes(np.array([0.18, 0.11, 0.07], np.float32), ellipses=[(0.015, 0.945 + b, 0.058, 0.045, -15)])  # hair
        limbs(0.0, 1.0)
        return p.downsampled(self.width, self.height, self.anchor)


class CarSprite:
    """A side-view hatchback driving to the right, `length` world px bumper to bumper.

    Painted body with a vertical sheen and a highlight line, dark glass, lamps, and
    wheels whose spokes turn with the phase (radians of wheel rotation)."""

    def __init__(self, length: float, rng: np.random.Generator, paint: tuple[float, float, float],
                 supersample: int = 2) -> None:
        self.length = float(length)
        self.ss = int(supersample)
        self.width = math.ceil(1.1 * length) + 4
        self.height = math.ceil(0.52 * length) + 4
        self.anchor = (0.55 * length + 2, 0.49 * length + 2)
        ss = self.ss
        w, h, unit = self.width * ss, self.height * ss, self.length * ss
        up = (self.anchor[1] * ss - np.arange(h, dtype=np.float32))[:, None] / unit
        sheen = np.broadcast_to(0.75 + 0.45 * _smoothstep(0.1, 0.45, up), (h, w))
        flakes = 1.0 + 0.06 * _fractal_noise(rng, w, h, 0.03 * unit, 3)
        self.paint = np.clip(np.asarray(paint, np.float32) * (sheen * flakes)[..., None], 0, 1)
        glass = np.array([0.16, 0.20, 0.26], np.float32)
        streak = np.broadcast_to(_smoothstep(0.36, 0.42, up), (h, w))
        self.glass = np.clip(glass + (0.35 * streak)[..., None], 0, 1)

    def render(self, phase: float) -> SpriteFrame:
        p = _Painter.supersampled(self.width, self.height, self.anchor, self.length, self.ss)
        b = 0.004 * math.sin(3 * phase)  # a little suspension bounce
        p.shapes(self.paint, polygons=[
            [(-0.5, 0.10 + b), (0.5, 0.10 + b), (0.52, 0.19 + b), (0.47, 0.27 + b), (0.22, 0.30 + b),
             (0.08, 0.44 + b), (-0.30, 0.45 + b), (-0.44, 0.33 + b), (-0.5, 0.27 + b)],
        ])
        p.shapes(self.glass, polygons=[
            [(-0.38, 0.32 + b), (-0.28, 0.42 + b), (-0.11, 0.42 + b), (-0.11, 0.32 + b)],
            [(-0.07, 0.32 + b), (-0.07, 0.42 + b), (0.06, 0.42 + b), (0.17, 0.32 + b)],
        ])
        p.shapes(self.paint * 1.25, limbs=[([(-0.48, 0.255 + b), (0.46, 0.255 + b)], 0.008)])  # body line
        p.shapes(np.array([0.98, 0.93, 0.70], np.float32), ellipses=[(0.495, 0.22 + b, 0.018, 0.025, 0)])
        p.shapes(np.array([0.75, 0.06, 0.05], np.float32), ellipses=[(-0.495, 0.25 + b, 0.012, 0.03, 0)])
        wheels = (-0.32, 0.32)
        p.shapes(np.array([0.05, 0.05, 0.05], np.float32), ellipses=[(x, 0.1, 0.115, 0.115, 0) for x in wheels])
        p.shapes(np.array([0.62, 0.63, 0.65], np.float32), ellipses=[(x, 0.1, 0.055, 0.055, 0) for x in wheels])
        turns = [-phase + k * 2 * math.pi / 5 for k in range(5)]  # clockwise as the car drives right
        spokes = [([(x, 0.1), (x + 0.05 * math.cos(a), 0.1 + 0.05 * math.sin(a))], 0.012) for x in wheels for a in turns]
        p.shapes(np.array([0.25, 0.25, 0.27], np.float32), limbs=spokes)
        return p.downsampled(self.width, self.height, self.anchor)


class BallSprite:
    """A shaded beach ball of `radius` world px that bounces up to `bounce` px per
    gait cycle (on the ground at phase 0) and spins as it travels to the right."""

    COLOURS = np.array([[0.92, 0.16, 0.12], [0.97, 0.97, 0.95], [0.12, 0.38, 0.85],
                        [0.98, 0.80, 0.10], [0.97, 0.97, 0.95], [0.15, 0.65, 0.30]], np.float32)

    def __init__(self, radius: float, bounce: float, supersample: int = 4) -> None:
        self.radius, self.bounce = float(radius), float(bounce)
        self.ss = int(supersample)
        self.width = math.ceil(2 * radius) + 4
        self.height = math.ceil(2 * radius + bounce) + 4
        self.anchor = (radius + 2, 2 * radius + bounce + 2)

    def render(self, phase: float) -> SpriteFrame:
        ss, r = self.ss, self.radius * self.ss
        lift = self.bounce * abs(math.sin(phase / 2))
        cx = self.anchor[0] * ss + (ss - 1) / 2
        cy = (self.anchor[1] - self.radius - lift) * ss + (ss - 1) / 2
        ys, xs = np.mgrid[0:self.height * ss, 0:self.width * ss].astype(np.float32)
        dx, dy = (xs - cx) / r, (ys - cy) / r
        rho2 = dx * dx + dy * dy
        alpha = np.clip(r * (1.0 - np.sqrt(rho2)) + 0.5, 0.0, 1.0)
        # Six gores meeting at the pole that faces the viewer, turning with the spin.
        spin = 0.8 * phase
        gore = np.floor(((np.arctan2(dy, dx) + spin) % (2 * np.pi)) / (2 * np.pi / 6)).astype(np.int64) % 6
        colour = self.COLOURS[gore]
        colour[rho2 < 0.06] = self.COLOURS[1]  # the white cap
        nz = np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
        light = np.array([-0.45, -0.55, 0.70], np.float32)
        lambert = np.clip(dx * light[0] + dy * light[1] + nz * light[2], 0.0, 1.0)
        half = light + np.array([0.0, 0.0, 1.0], np.float32)
        half /= np.linalg.norm(half)
        spec = np.clip(dx * half[0] + dy * half[1] + nz * half[2], 0.0, 1.0) ** 40
        rgb = np.clip(colour * (0.3 + 0.75 * lambert)[..., None] + 0.6 * spec[..., None], 0.0, 1.0)
        size = (self.width, self.height)
        premult = cv2.resize(rgb * alpha[..., None], size, interpolation=cv2.INTER_AREA)
        return SpriteFrame(premult, cv2.resize(alpha, size, interpolation=cv2.INTER_AREA), self.anchor)


@dataclass(frozen=True)
class Mirrored:
    """A sprite facing the other way: every pose flipped left-right about its grid."""

    sprite: Sprite

    def render(self, phase: float) -> SpriteFrame:
        pose = self.sprite.render(phase)
        width = pose.alpha.shape[1]
        return SpriteFrame(pose.premult[:, ::-1].copy(), pose.alpha[:, ::-1].copy(),
                           (width - 1 - pose.anchor[0], pose.anchor[1]))


# ---------------------------------------------------------------------- tracks


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


# ---------------------------------------------------------------------- effects


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
        _, feet_y = _apply(to_frame, u0, v0)
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
            x, y = _apply(at.world_to_frame, puff.origin[0] + puff.velocity[0] * age, puff.origin[1] + puff.velocity[1] * age)
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


# ---------------------------------------------------------------------- scenes and presets


@dataclass
class Actor:
    """One object of the scene: how it looks, where it goes, what it does to the scene.

    Its layer is the object over its effects, the effects composited in list order."""

    name: str
    sprite: Sprite
    track: Track
    effects: tuple[Effect, ...] = ()


@dataclass
class Scene:
    """Everything render_clip needs: actors are listed back to front."""

    ground: np.ndarray
    camera: CameraPath
    actors: list[Actor]
    mask_dilation: int = 3  # px the coarse masks grow beyond the object


@dataclass(frozen=True)
class Preset:
    """A named recipe: build(width, height, n_frames, rng) -> Scene; the description says what is hard."""

    name: str
    description: str
    build: Callable[[int, int, int, np.random.Generator], Scene]
    fps: float = 24.0


def _frame_track(camera: CameraPath, n_frames: int, feet: float, start: float, end: float, stride: float) -> Track:
    """A walk along a world row that starts at frame 0's pixel (start, feet) and ends
    below frame T-1's pixel column `end` (all as fractions of the frame size)."""
    width, height = camera.width, camera.height
    begin = camera.to_world(0, start * (width - 1), feet * (height - 1))
    end_x, _ = camera.to_world(n_frames - 1, end * (width - 1), feet * (height - 1))
    return walk_track(begin, (end_x, begin[1]), n_frames, stride)


def _ground(rng: np.random.Generator, size: tuple[int, int], width: int, height: int) -> np.ndarray:
    return textured_ground(rng, *size, feature_scale=min(width / 448, height / 256))


def _dilation(height: int) -> int:
    return max(2, round(height / 80))


def _build_dog(width: int, height: int, n_frames: int, rng: np.random.Generator) -> Scene:
    camera, ground_size = moving_camera(n_frames, width, height, pan=0.25, drift=0.03, zoom=(1.0, 1.05))
    ground = _ground(rng, ground_size, width, height)
    length = min(0.2 * width, 0.34 * height)
    dog = DogSprite(length, rng)
    track = _frame_track(camera, n_frames, 0.64, 0.22, 0.62, stride=0.9 * length)
    shadow = SoftShadow(strength=0.6, squash=0.7, shear=0.9, blur_near=0.5 + 0.02 * length, blur_far=1.0 + 0.08 * length)
    return Scene(ground, camera, [Actor("dog", dog, track, (shadow,))], mask_dilation=_dilation(height))


def _build_bounce(width: int, height: int, n_frames: int, rng: np.random.Generator) -> Scene:
    camera, ground_size = moving_camera(n_frames, width, height, pan=0.0, drift=0.0, zoom=(1.0, 1.0))
    ground = _ground(rng, ground_size, width, height)
    radius = min(0.045 * width, 0.08 * height)
    ball = BallSprite(radius, bounce=0.3 * height)
    distance = 0.65 * (width - 1)
    track = _frame_track(camera, n_frames, 0.8, 0.15, 0.8, stride=distance / 2.5)
    shadow = SoftShadow(strength=0.55, squash=0.2, shear=0.5, blur_near=0.3 + 0.05 * radius, blur_far=1.0 + 0.3 * radius)
    return Scene(ground, camera, [Actor("ball", ball, track, (shadow,))], mask_dilation=_dilation(height))


def _build_reflection(width: int, height: int, n_frames: int, rng: np.random.Generator) -> Scene:
    camera, ground_size = moving_camera(n_frames, width, height, pan=0.1, drift=0.02, zoom=(1.0, 1.3))
    floor = tiled_floor(rng, *ground_size, tile=0.2 * height)
    size = 0.42 * height
    walker = WalkerSprite(size, rng, shirt=(0.80, 0.25, 0.20))
    track = _frame_track(camera, n_frames, 0.62, 0.25, 0.6, stride=0.75 * size)
    mirror = Reflection(strength=0.5, reach=1.0, blur=0.4 + 0.01 * size)
    return Scene(floor, camera, [Actor("walker", walker, track, (mirror,))], mask_dilation=_dilation(height))


def _build_dust(width: int, height: int, n_frames: int, rng: np.random.Generator) -> Scene:
    camera, ground_size = moving_camera(n_frames, width, height, pan=0.9, drift=0.0, zoom=(1.0, 1.0))
    ground = _ground(rng, ground_size, width, height)
    length = min(0.3 * width, 0.5 * height)
    car = CarSprite(length, rng, paint=(0.15, 0.35, 0.75))
    track = _frame_track(camera, n_frames, 0.72, 0.35, 0.6, stride=2 * math.pi * 0.11 * length)
    shadow = SoftShadow(strength=0.55, squash=0.35, shear=0.5, blur_near=0.5 + 0.02 * length, blur_far=1.0 + 0.06 * length)
    dust = DustCloud(track, length, rng)
    return Scene(ground, camera, [Actor("car", car, track, (shadow, dust))], mask_dilation=_dilation(height))


def _build_crossing(width: int, height: int, n_frames: int, rng: np.random.Generator) -> Scene:
    camera, ground_size = moving_camera(n_frames, width, height, pan=0.12, drift=0.04, zoom=(1.0, 1.04), roll=(-2.5, 2.5))
    ground = _ground(rng, ground_size, width, height)
    actors = []
    for name, size, feet, start, end, shirt in (("far_walker", 0.42, 0.60, 0.22, 0.68, (0.25, 0.60, 0.30)),
                                                ("near_walker", 0.48, 0.79, 0.78, 0.32, (0.90, 0.75, 0.20))):
        size *= height
        walker: Sprite = WalkerSprite(size, rng, shirt=shirt)
        if end < start:
            walker = Mirrored(walker)
        track = _frame_track(camera, n_frames, feet, start, end, stride=0.75 * size)
        shadow = SoftShadow(strength=0.5, squash=0.35, shear=0.8, blur_near=0.4 + 0.015 * size, blur_far=1.0 + 0.06 * size)
        actors.append(Actor(name, walker, track, (shadow,)))
    return Scene(ground, camera, actors, mask_dilation=_dilation(height))


def _build_trio(width: int, height: int, n_frames: int, rng: np.random.Generator) -> Scene:
    camera, ground_size = moving_camera(n_frames, width, height, pan=0.15, drift=0.02, zoom=(1.12, 1.0))
    ground = _ground(rng, ground_size, width, height)
    walker_size = 0.38 * height
    radius = min(0.035 * width, 0.06 * height)
    dog_length = min(0.16 * width, 0.27 * height)

    def shadow(size: float) -> SoftShadow:
        return SoftShadow(strength=0.5, squash=0.3, shear=0.6, blur_near=0.4 + 0.02 * size, blur_far=1.0 + 0.07 * size)

    actors = [
        Actor("walker", WalkerSprite(walker_size, rng, shirt=(0.55, 0.30, 0.70)),
              _frame_track(camera, n_frames, 0.6, 0.15, 0.6, stride=0.75 * walker_size), (shadow(walker_size),)),
        Actor("ball", Mirrored(BallSprite(radius, bounce=0.22 * height)),
              _frame_track(camera, n_frames, 0.72, 0.85, 0.3, stride=0.3 * width), (shadow(2 * radius),)),
        Actor("dog", DogSprite(dog_length, rng),
              _frame_track(camera, n_frames, 0.88, 0.05, 0.6, stride=0.9 * dog_length), (shadow(dog_length),)),
    ]
    return Scene(ground, camera, actors, mask_dilation=_dilation(height))


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("dog", "a dog walks right across pebbly ground under a slow pan, casting a soft shadow", _build_dog),
        Preset("bounce", "static camera; a ball bounces across pebbles and its soft shadow detaches from it in the air",
               _build_bounce),
        Preset("reflection", "a walker on a polished marble floor while the camera zooms in; the effect is a coloured "
               "reflection below the feet, not a darkening", _build_reflection),
        Preset("dust", "the camera pans fast to follow a car that leaves a semi-transparent dust cloud lingering "
               "behind it, over its soft shadow", _build_dust),
        Preset("crossing", "two walkers cross in opposite directions, the near one hiding the far one, each with a "
               "soft shadow; the camera rolls slightly while it pans", _build_crossing),
        Preset("trio", "three objects (walker, bouncing ball, dog) with overlapping shadows and occlusions between "
               "all three, under a zoom-out and pan", _build_trio),
    )
}


# ---------------------------------------------------------------------- rendering


def _check_args(preset: str, n_frames: int, width: int, height: int, seed: int) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}")
    for name, value in (("n_frames", n_frames), ("width", width), ("height", height), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004 (one error type for bad args)
    if n_frames < MIN_FRAMES:
        raise ValueError(f"n_frames must be at least {MIN_FRAMES}, got {n_frames}")
    for name, value in (("width", width), ("height", height)):
        if value % SIZE_MULTIPLE or not MIN_SIZE <= value <= MAX_SIZE:
            raise ValueError(
                f"{name} must be a multiple of {SIZE_MULTIPLE} between {MIN_SIZE} and {MAX_SIZE}, got {value}"
            )
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


def _render_actor(actor: Actor, camera: CameraPath, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer (straight RGBA, float), the object's own alpha and the effect-only alpha of one actor at frame t."""
    size = (camera.width, camera.height)
    sprite = actor.sprite.render(float(actor.track.phases[t]))
    x, y = actor.track.positions[t]
    world_to_frame = camera.matrix(t)
    to_frame = world_to_frame @ translation(x - sprite.anchor[0], y - sprite.anchor[1])
    warp = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    premult = cv2.warpAffine(sprite.premult, to_frame[:2], size, **warp)
    own = np.clip(cv2.warpAffine(sprite.alpha, to_frame[:2], size, **warp), 0.0, 1.0)
    at = Placement(t, sprite, to_frame, world_to_frame, size)
    effect_premult = np.zeros(premult.shape, np.float32)
    effect = np.zeros_like(own)
    for item in actor.effects:
        colour, alpha = item.render(at)
        effect_premult = colour + (1.0 - alpha)[..., None] * effect_premult
        effect = alpha + (1.0 - alpha) * effect
    # The object over its effects: premultiplied "over".
    alpha = own + (1.0 - own) * effect
    premult = premult + (1.0 - own)[..., None] * effect_premult
    rgb = np.where(alpha[..., None] > 1e-6, premult / np.maximum(alpha, 1e-6)[..., None], 0.0)
    layer = np.concatenate([np.clip(rgb, 0.0, 1.0), alpha[..., None]], axis=2)
    effect_only = np.where(own < 1.0 / 255.0, effect, 0.0)
    return layer, own, effect_only


def render_clip(preset: str = "dog", n_frames: int = 48, width: int = 448, height: int = 256, seed: int = 0) -> Clip:
    """Render a synthetic clip of a preset with its exact ground-truth layers.

    The coarse masks cover what is visible of each object (as a segmenter would see
    it: objects in front hide parts of those behind), grown by the scene's dilation.
    """
    _check_args(preset, n_frames, width, height, seed)
    recipe = PRESETS[preset]
    scene = recipe.build(width, height, n_frames, np.random.default_rng(seed))
    names = [actor.name for actor in scene.actors]
    if len(set(names)) != len(names):
        raise ValueError(f"preset {preset!r} has duplicate object names {names}")
    r = scene.mask_dilation
    dilate = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    shape = (n_frames, height, width)
    background = np.empty(shape + (3,), np.uint8)
    frames = np.empty(shape + (3,), np.uint8)
    layers = {n: np.empty(shape + (4,), np.uint8) for n in names}
    effects = {n: np.empty(shape, np.uint8) for n in names}
    masks = {n: np.empty(shape, np.uint8) for n in names}
    for t in range(n_frames):
        background[t] = to_uint8(film_ground(scene.ground, scene.camera, t), half_even=True)
        drawn = [_render_actor(actor, scene.camera, t) for actor in scene.actors]
        composite = background[t].astype(np.float32)
        for i, (name, (layer, own, effect)) in enumerate(zip(names, drawn)):
            visible = own
            for front, _, _ in drawn[i + 1:]:
                visible = visible * (1.0 - front[..., 3])
            q = to_uint8(layer, half_even=True)
            q[q[..., 3] == 0] = 0
            layers[name][t], effects[name][t] = q, to_uint8(effect, half_even=True)
            masks[name][t] = cv2.dilate((visible > 0.05).astype(np.uint8) * 255, dilate)
            # The frame is made from the quantized ground truth, so it reproduces exactly.
            a = q[..., 3:].astype(np.float32) / 255.0
            composite = a * q[..., :3] + (1.0 - a) * composite
        frames[t] = np.clip(np.rint(composite), 0, 255).astype(np.uint8)
    camera = np.stack([scene.camera.matrix(t) for t in range(n_frames)])
    return Clip(frames, background, layers, effects, masks, recipe.fps, names, preset, seed, camera)


def write_clip(clip: Clip, out_dir: Path) -> None:
    """Write a clip as the pipeline's input (video.mp4, masks/) and its ground truth (gt/).

    out_dir/video.mp4, out_dir/masks/{object}/00000.png..., out_dir/gt/frames/ (the
    lossless composite), gt/background/, gt/layers/{object}/rgba/, gt/effects/{object}/,
    gt/info.json.
    """
    out_dir = Path(out_dir)
    write_video(out_dir / "video.mp4", clip.frames, clip.fps)
    for name in clip.object_names:
        write_frames(out_dir / "masks" / name, clip.masks[name])
    gt = out_dir / "gt"
    write_frames(gt / "frames", clip.frames)
    write_frames(gt / "background", clip.background)
    for name in clip.object_names:
        write_frames(gt / "layers" / name / "rgba", clip.layers[name])
        write_frames(gt / "effects" / name, clip.effects[name])
    info = {
        "preset": clip.preset,
        "description": PRESETS[clip.preset].description if clip.preset in PRESETS else "",
        "n_frames": clip.n_frames,
        "width": clip.width,
        "height": clip.height,
        "fps": clip.fps,
        "seed": clip.seed,
        "objects": list(clip.object_names),
        "alpha": "straight; frames = layers composited over background, back to front",
        "camera_world_to_frame": (np.round(clip.camera, 6) + 0.0).tolist(),  # + 0.0: no "-0.0"
    }
    save_json(gt / "info.json", info)


def make_demo(
    out_dir: Path | str,
    preset: str = "dog",
    n_frames: int = 48,
    width: int = 448,
    height: int = 256,
    seed: int = 0,
) -> None:
    """Render a preset and write it to `out_dir` (see write_clip), logging what was written."""
    log = get_logger("demo")
    clip = render_clip(preset, n_frames, width, height, seed)
    out_dir = Path(out_dir)
    write_clip(clip, out_dir)
    log.info(
        "wrote synthetic clip %r (%d frames, %dx%d, %.0f fps, seed %d) to %s: video.mp4, masks for %s, ground truth in gt/",
        preset, clip.n_frames, clip.width, clip.height, clip.fps, seed, out_dir, ", ".join(clip.object_names),
    )
