"""A scene: what a preset builds and render_clip draws (the ground, the camera and the
actors, each a sprite on a track with its effects)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnimatte.synthetic.camera_paths import CameraPath
from omnimatte.synthetic.effects import Effect
from omnimatte.synthetic.sprites import Sprite
from omnimatte.synthetic.tracks import Track


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
