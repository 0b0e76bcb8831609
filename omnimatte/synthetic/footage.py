"""Footage traits on a synthetic clip: what real footage does that the presets do not, one trait at a time.

The presets composite 2D layers exactly as the model assumes a frame is made. Each trait here
takes a preset's clip and adds one way footage breaks that assumption, with the region that
breaks it known per frame, so a check (the diagnose stage) or a rendering step can be tested
on a clip made to fail it beside the same clip without the trait:

* noise: sensor grain and an H.264 round trip, as a user's video has (the camera model still holds);
* exposure: the whole frame brightens by a ramp over the clip; white_balance: the channels drift apart;
* parallax: a standing pole nearer the camera than the ground, so it slides over the ground as the
  camera moves and no homography of the ground explains it;
* moving_background: a patch of rippling water fixed on the ground that changes every frame;
* unmasked_mover: a second object crosses the frame with no mask;
* mask_jump: one frame's mask of the first object swells far past the object;
* lens_distortion: barrel distortion of the whole frame (and the masks), seen through a moving camera.

`unexplained` is, per frame, where the registered ground cannot explain the frame (the pole, the
water, the mover), False everywhere for the traits that keep the camera model.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from omnimatte.camera import Camera, frame_corners, translation
from omnimatte.synthetic.clip import Clip, render_clip

TRAITS = ("clean", "noise", "exposure", "white_balance", "parallax", "moving_background", "unmasked_mover",
          "mask_jump", "lens_distortion")


@dataclass
class FootageClip:
    """Frames (T,H,W,3) uint8, coarse masks per object (T,H,W) uint8 0/255 and, per frame, where the
    camera model cannot explain the frame (T,H,W) bool; `clip` is the preset's clip underneath."""

    trait: str
    frames: np.ndarray
    masks: dict[str, np.ndarray]
    unexplained: np.ndarray
    clip: Clip

    @property
    def object_names(self) -> list[str]:
        return list(self.masks)

    def true_camera(self) -> Camera:
        """The homographies the clip was filmed with, frame pixel -> canvas pixel (the ground, shifted so the canvas
        starts at 0): what a perfect registration of the ground finds."""
        to_ground = np.linalg.inv(self.clip.camera)
        height, width = self.frames.shape[1:3]
        corners = frame_corners(width, height)
        mapped = np.einsum("tij,kj->tki", to_ground, corners)
        xy = mapped[..., :2] / mapped[..., 2:]
        low = np.floor(xy.reshape(-1, 2).min(axis=0))
        high = np.ceil(xy.reshape(-1, 2).max(axis=0))
        homographies = np.einsum("ij,tjk->tik", translation(-low[0], -low[1]), to_ground)
        return Camera(homographies / homographies[:, 2:3, 2:3], (int(high[1] - low[1]), int(high[0] - low[0])))


def _composite(background: np.ndarray, clip: Clip) -> np.ndarray:
    """The clip's layers over a new background (T,H,W,3) float in levels, back to front, as uint8."""
    image = background.astype(np.float32)
    for name in clip.object_names:
        layer = clip.layers[name].astype(np.float32)
        alpha = layer[..., 3:] / 255.0
        image = alpha * layer[..., :3] + (1.0 - alpha) * image
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _object_cover(clip: Clip) -> np.ndarray:
    """Where some object's own layer (not its effects) is opaque enough to hide what lies behind, (T,H,W) bool."""
    cover = np.zeros(clip.frames.shape[:3], bool)
    for name in clip.object_names:
        cover |= (clip.layers[name][..., 3] > 127) & (clip.effects[name] == 0)
    return cover


def _world_grid(clip: Clip, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The ground (world) position of every pixel of frame t: x and y, (H,W) each."""
    ys, xs = np.mgrid[0:clip.height, 0:clip.width].astype(np.float64)
    inverse = np.linalg.inv(clip.camera[t])
    points = np.stack([xs, ys, np.ones_like(xs)], -1) @ inverse.T
    return points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]


def add_noise(frames: np.ndarray, sigma: float, crf: int, rng: np.random.Generator, fps: float = 24.0) -> np.ndarray:
    """Gaussian grain of `sigma` levels, then an H.264 round trip at `crf` (the frames as a user's video holds them)."""
    from omnimatte.io import read_video, write_video

    noisy = np.clip(np.rint(frames + rng.normal(0.0, sigma, frames.shape)), 0, 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        write_video(path, noisy, fps, crf=crf)
        return read_video(path)[:, :frames.shape[1], :frames.shape[2]].copy()


def _pole(clip: Clip, parallax: float, width_share: float) -> tuple[np.ndarray, np.ndarray]:
    """A standing pole's colour (H,W,3) and coverage (T,H,W) per frame: nearer than the ground, it moves
    (1 + parallax) times as fast as the ground below it does, from where the ground puts it at the middle frame."""
    count, height, width = clip.frames.shape[:3]
    middle = count // 2
    anchor = np.linalg.inv(clip.camera[middle]) @ np.array([0.65 * (width - 1), 0.5 * (height - 1), 1.0])
    half = width_share * width / 2
    xs = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    bands = 0.85 + 0.15 * np.sign(np.sin(rows / max(2.0, height / 24) * math.pi))  # painted rings: features to match
    cover = np.zeros((count, height, width), np.float32)
    colour = np.zeros((count, height, width, 3), np.float32)
    for t in range(count):
        ground = clip.camera[t] @ anchor
        at_middle = clip.camera[middle] @ anchor
        x = ground[0] / ground[2] + parallax * (ground[0] / ground[2] - at_middle[0] / at_middle[2])
        # Anti-aliased edges, shaded like a cylinder lit from the left.
        coverage = np.clip(half + 0.5 - np.abs(xs - x), 0.0, 1.0)
        across = np.clip((xs - x) / max(half, 1.0), -1.0, 1.0)
        shade = 0.55 + 0.45 * np.sqrt(np.clip(1.0 - across ** 2, 0.0, 1.0)) - 0.15 * across
        cover[t] = coverage[None, :]
        colour[t] = (np.array([200.0, 150.0, 110.0]) * shade[None, :, None] * bands[:, None, None])
    return colour, cover


def _water(clip: Clip, rng: np.random.Generator, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """A patch of rippling water fixed on the ground (an ellipse in the upper half of the middle frame):
    its colour (T,H,W,3) and coverage (T,H,W); the ripples travel and change every frame."""
    count, height, width = clip.frames.shape[:3]
    middle = count // 2
    centre = np.linalg.inv(clip.camera[middle]) @ np.array([0.55 * (width - 1), 0.22 * (height - 1), 1.0])
    centre = centre[:2] / centre[2]
    radii = (0.22 * width, 0.14 * height)
    waves = [(rng.uniform(0, 2 * math.pi), rng.uniform(0.6 * height / 16, 1.4 * height / 16), rng.uniform(0.6, 1.2),
              rng.uniform(0, 2 * math.pi)) for _ in range(4)]
    colour = np.zeros((count, height, width, 3), np.float32)
    cover = np.zeros((count, height, width), np.float32)
    for t in range(count):
        wx, wy = _world_grid(clip, t)
        inside = 1.0 - ((wx - centre[0]) / radii[0]) ** 2 - ((wy - centre[1]) / radii[1]) ** 2
        cover[t] = np.clip(inside * min(radii) / 2, 0.0, 1.0)
        ripple = np.zeros_like(wx)
        for angle, wavelength, speed, phase in waves:
            along = wx * math.cos(angle) + wy * math.sin(angle)
            ripple += np.sin(2 * math.pi * along / wavelength - speed * t + phase)
        light = 1.0 + strength * ripple / len(waves) * 2
        colour[t] = np.array([60.0, 110.0, 150.0]) * light[..., None]
    return np.clip(colour, 0, 255), cover


def _mover(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """A grey box that crosses the upper part of the frame from right to left with no mask: colour and coverage."""
    count, height, width = clip.frames.shape[:3]
    size = (0.12 * width, 0.2 * height)
    colour = np.zeros((count, height, width, 3), np.float32)
    cover = np.zeros((count, height, width), np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for t in range(count):
        left = (0.9 - 0.8 * t / max(count - 1, 1)) * width - size[0]
        inside_x = np.clip(np.minimum(xs - left, left + size[0] - xs) + 0.5, 0, 1)
        inside_y = np.clip(np.minimum(ys - 0.1 * height, 0.1 * height + size[1] - ys) + 0.5, 0, 1)
        cover[t] = inside_x * inside_y
        stripes = 0.8 + 0.2 * np.sign(np.sin((xs - left) / 3.0))
        colour[t] = np.array([170.0, 170.0, 175.0]) * stripes[..., None]
    return colour, cover


def _lay_over_ground(clip: Clip, colour: np.ndarray, cover: np.ndarray, threshold: float = 0.5
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The clip's frames with something laid on the ground behind its objects, and where it shows."""
    background = clip.background.astype(np.float32)
    background = cover[..., None] * colour + (1.0 - cover[..., None]) * background
    return _composite(background, clip), (cover > threshold) & ~_object_cover(clip)


def _barrel(image: np.ndarray, k1: float, interpolation: int) -> np.ndarray:
    """An image seen through a lens with radial distortion k1 (radius normalised to half the diagonal; k1 > 0: barrel)."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy, norm = (width - 1) / 2, (height - 1) / 2, math.hypot(width, height) / 2
    dx, dy = (xs - cx) / norm, (ys - cy) / norm
    # Each output pixel shows the undistorted point further out: r_u = r_d (1 + k1 r_d^2).
    scale = 1.0 + k1 * (dx * dx + dy * dy)
    return cv2.remap(image, cx + dx * scale * norm, cy + dy * scale * norm, interpolation, borderMode=cv2.BORDER_REFLECT)


def footage_clip(trait: str, preset: str = "dog", n_frames: int = 24, width: int = 192, height: int = 112,
                 seed: int = 0, strength: float = 1.0) -> FootageClip:
    """A preset's clip with one footage trait (TRAITS); `strength` scales how far the trait goes (1: clearly)."""
    if trait not in TRAITS:
        raise ValueError(f"unknown footage trait {trait!r}; choose one of {', '.join(TRAITS)}")
    clip = render_clip(preset, n_frames, width, height, seed)
    rng = np.random.default_rng(seed + 1)
    frames, masks = clip.frames, dict(clip.masks)
    unexplained = np.zeros(frames.shape[:3], bool)
    ramp = np.linspace(0.0, 1.0, n_frames)[:, None, None, None]
    if trait == "noise":
        frames = add_noise(frames, 3.0 * strength, 23, rng, clip.fps)
    elif trait == "exposure":
        frames = np.clip(np.rint(frames * (1.0 + 0.3 * strength * ramp)), 0, 255).astype(np.uint8)
    elif trait == "white_balance":
        gains = 1.0 + 0.15 * strength * ramp * np.array([1.0, 0.0, -1.0])
        frames = np.clip(np.rint(frames * gains), 0, 255).astype(np.uint8)
    elif trait == "parallax":
        frames, unexplained = _lay_over_ground(clip, *_pole(clip, strength, 0.07))
    elif trait == "moving_background":
        frames, unexplained = _lay_over_ground(clip, *_water(clip, rng, 0.35 * strength))
    elif trait == "unmasked_mover":
        frames, unexplained = _lay_over_ground(clip, *_mover(clip))
    elif trait == "mask_jump":
        first = clip.object_names[0]
        swollen = masks[first].copy()
        grow = max(3, round(0.08 * height * strength))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        swollen[n_frames // 2] = cv2.dilate(swollen[n_frames // 2], kernel)
        masks[first] = swollen
    elif trait == "lens_distortion":
        k1 = 0.12 * strength
        frames = np.stack([_barrel(f, k1, cv2.INTER_LINEAR) for f in frames])
        masks = {name: np.stack([_barrel(m, k1, cv2.INTER_NEAREST) for m in mask]) for name, mask in masks.items()}
    return FootageClip(trait, frames, masks, unexplained, replace(clip, frames=frames))
