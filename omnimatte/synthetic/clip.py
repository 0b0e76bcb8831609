"""Rendering a preset into a Clip: every layer, the background and the frame that
composites them, quantized so the frames reproduce from the stored ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from omnimatte.camera import translation
from omnimatte.imaging import to_uint8
from omnimatte.synthetic.camera_paths import CameraPath, film_ground
from omnimatte.synthetic.effects import Placement
from omnimatte.synthetic.presets import PRESETS
from omnimatte.synthetic.scene import Actor

MIN_FRAMES = 8
MIN_SIZE = 64
MAX_SIZE = 4096
SIZE_MULTIPLE = 16


@dataclass(kw_only=True)
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
    return Clip(frames=frames, background=background, layers=layers, effects=effects, masks=masks, fps=recipe.fps,
                object_names=names, preset=preset, seed=seed, camera=camera)
