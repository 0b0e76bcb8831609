"""Every preset, registered in PRESETS: a named recipe that builds a Scene from the
textures, camera paths, sprites, tracks and effects. Adding a preset touches this file
(and the lists that name presets outside the package: the config schema's enum and
config/benchmark.yaml, which tests keep in step)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from omnimatte.synthetic.camera_paths import CameraPath, moving_camera
from omnimatte.synthetic.effects import DustCloud, Reflection, SoftShadow
from omnimatte.synthetic.scene import Actor, Scene
from omnimatte.synthetic.sprites import BallSprite, CarSprite, DogSprite, Mirrored, Sprite, WalkerSprite
from omnimatte.synthetic.textures import textured_ground, tiled_floor
from omnimatte.synthetic.tracks import Track, walk_track


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
