"""Object sprites drawn procedurally in their own pixel grid, one pose per gait phase:
a dog, a walker, a car, a beach ball, and any of them facing the other way."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from omnimatte.synthetic.primitives import SHIFT, fixed_point, fractal_noise, smoothstep


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
        return fixed_point(self.anchor[0] + x * self.unit), fixed_point(self.anchor[1] - y * self.unit)

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
            axes = (max(1, fixed_point(rx * u)), max(1, fixed_point(ry * u)))
            cv2.ellipse(mask, self.px(x, y), axes, angle, 0, 360, 255, -1, cv2.LINE_AA, SHIFT)
        for points, width in limbs:
            thickness = max(1, int(np.rint(width * u)))
            for a, b in itertools.pairwise(points):
                cv2.line(mask, self.px(*a), self.px(*b), 255, thickness, cv2.LINE_AA, SHIFT)
        for points in polygons:
            pts = np.array([self.px(*p) for p in points], np.int32)
            cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, SHIFT)
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
        belly = smoothstep(0.52, 0.40, yy)
        socks = smoothstep(0.07, 0.03, yy)
        saddle = smoothstep(0.64, 0.72, yy) * smoothstep(-0.1, 0.15, fractal_noise(rng, w, h, 0.35 * unit, 3))
        body = tan + belly[..., None] * (cream - tan)
        body = body + (0.8 * saddle)[..., None] * (dark - body)
        legs = tan + socks[..., None] * (cream - tan)
        fur = 1.0 + 0.35 * fractal_noise(rng, w, h, 0.2 * unit, 4)
        # Fur strokes, flowing backwards and down, lighter and darker than the coat.
        strokes = np.full((h, w), 128, np.uint8)
        stroke_len = max(2.0, 0.05 * unit)
        for _ in range(w * h // 25):
            x, y = rng.random() * w, rng.random() * h
            angle = math.radians(200 + rng.normal(0, 15))
            tip = (x + stroke_len * math.cos(angle), y - stroke_len * math.sin(angle))
            shade = int(128 + rng.choice([-1, 1]) * (30 + 50 * rng.random()))
            cv2.line(strokes, (fixed_point(x), fixed_point(y)), (fixed_point(tip[0]), fixed_point(tip[1])), shade, 1, cv2.LINE_AA, SHIFT)
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
        weave = 1.0 + 0.12 * fractal_noise(rng, w, h, 0.05 * unit, 3)
        cloth = shirt * (0.78 + 0.3 * smoothstep(0.3, 0.7, np.broadcast_to(stripes, (h, w))))[..., None]
        denim = np.array([0.20, 0.28, 0.48], np.float32) * (1.0 + 0.25 * fractal_noise(rng, w, h, 0.02 * unit, 3))[..., None]
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
        sheen = np.broadcast_to(0.75 + 0.45 * smoothstep(0.1, 0.45, up), (h, w))
        flakes = 1.0 + 0.06 * fractal_noise(rng, w, h, 0.03 * unit, 3)
        self.paint = np.clip(np.asarray(paint, np.float32) * (sheen * flakes)[..., None], 0, 1)
        glass = np.array([0.16, 0.20, 0.26], np.float32)
        streak = np.broadcast_to(smoothstep(0.36, 0.42, up), (h, w))
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
