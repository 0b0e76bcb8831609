"""Where each object is in frame t, as primitives any tracer can draw: spheres, capped cylinders and boxes.

A figure walks (legs and arms swing with the distance it has covered), a ball rolls or bounces, a cube
slides and turns; props stand still. Nothing here knows the renderer (renderer.py turns primitives into
its shapes), so the geometry is tested without one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omnimatte.rendered.scene import Body, Prop


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Cylinder:
    """A solid cylinder from `start` to `end` (both ends closed)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Box:
    """A box of half extents `half` centred at `centre`, turned by `yaw` radians about the vertical."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float = 0.0


Primitive = Sphere | Cylinder | Box


def _point(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def body_position(body: Body, t: int, n_frames: int) -> np.ndarray:
    """The body's ground point (x, 0, z) in frame t: along its track at constant speed."""
    s = t / max(n_frames - 1, 1)
    x = body.start[0] + s * (body.end[0] - body.start[0])
    z = body.start[1] + s * (body.end[1] - body.start[1])
    return np.array([x, 0.0, z])


def _capsule(a: np.ndarray, b: np.ndarray, radius: float) -> list[Primitive]:
    return [Cylinder(_point(a), _point(b), radius), Sphere(_point(a), radius), Sphere(_point(b), radius)]


def _figure(body: Body, t: int, n_frames: int) -> list[Primitive]:
    h = body.size
    ground = body_position(body, t, n_frames)
    heading = np.array([body.end[0] - body.start[0], 0.0, body.end[1] - body.start[1]])
    length = float(np.linalg.norm(heading))
    forward = heading / length if length > 0 else np.array([1.0, 0.0, 0.0])
    side = np.array([-forward[2], 0.0, forward[0]])
    up = np.array([0.0, 1.0, 0.0])
    stride = 0.75 * h
    phase = 2 * math.pi * (length * t / max(n_frames - 1, 1)) / stride
    parts: list[Primitive] = []
    hip = ground + 0.5 * h * up
    for sign in (-1.0, 1.0):
        swing = sign * math.sin(phase)
        lift = max(0.0, sign * math.cos(phase)) * 0.06 * h
        foot = ground + 0.05 * h * up + (0.2 * h * swing) * forward + sign * 0.07 * h * side + lift * up
        parts += _capsule(hip + sign * 0.07 * h * side, foot, 0.045 * h)
        shoulder = ground + 0.78 * h * up + sign * 0.14 * h * side
        hand = ground + 0.5 * h * up - (0.14 * h * swing) * forward + sign * 0.16 * h * side
        parts += _capsule(shoulder, hand, 0.032 * h)
    parts += _capsule(ground + 0.52 * h * up, ground + 0.76 * h * up, 0.11 * h)
    parts.append(Sphere(_point(ground + 0.9 * h * up), 0.075 * h))
    return parts


def body_primitives(body: Body, t: int, n_frames: int) -> list[Primitive]:
    """The body's primitives in frame t."""
    if body.shape == "figure":
        return _figure(body, t, n_frames)
    ground = body_position(body, t, n_frames)
    s = t / max(n_frames - 1, 1)
    if body.shape == "ball":
        radius = body.size / 2
        height = abs(math.sin(math.pi * body.bounces * s)) * body.bounce_height if body.bounces else 0.0
        return [Sphere(_point(ground + np.array([0.0, radius + height, 0.0])), radius)]
    half = body.size / 2
    return [Box(_point(ground + np.array([0.0, half, 0.0])), (half, half, half), 2 * math.pi * body.turns * s)]


def prop_primitives(prop: Prop) -> list[Primitive]:
    """A prop's primitives (the same in every frame)."""
    x, z = prop.position
    if prop.shape == "pole":
        return [Cylinder((x, 0.0, z), (x, prop.height, z), prop.size / 2)]
    half = prop.size / 2
    return [Box((x, half, z), (half, half, half))]


def centre_depth(primitives: list[Primitive], eye: np.ndarray, target: np.ndarray) -> float:
    """Distance along the camera's view direction to the middle of some primitives (the layer order's test)."""
    view = (target - eye) / np.linalg.norm(target - eye)
    centres = [np.asarray(p.centre if not isinstance(p, Cylinder) else np.add(p.start, p.end) / 2) for p in primitives]
    return float(np.mean([np.dot(c - eye, view) for c in centres]))
