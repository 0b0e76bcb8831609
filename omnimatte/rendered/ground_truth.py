"""Ground-truth layers from renders of one frame that share the sampler's seed (renderer.frame_seed).

An object's layer is what turns the clean plate (the frame rendered with no object) into the frame with
that object alone: inside the object its coverage (the share of the pixel's samples that see it), and
outside it the object's effect, the least alpha that turns the plate into the render with it alone
(least_alpha: the darkening of its shadow, a reflection's change, in the frame's display values where
the layers composite).

Outside the object, a pixel's paths can graze it (a ray that bounced off the floor into it, a sky sample it
blocks): with a few samples per pixel, single paths make speckles of a few percent all around it, whose
mean is the object's faint occlusion of the sky. That is Monte Carlo noise, not an effect a method can see
through the clip's own noise and codec, so the effect is taken from the renders' local ratio (their means
over EFFECT_SMOOTHING px, among the pixels outside the object) and counted where its least alpha reaches
EFFECT_FLOOR. Inside a shadow wider than that, the averaging changes nothing: its alpha is the darkening
the tracer computed.
"""

from __future__ import annotations

import cv2
import numpy as np

EFFECT_SMOOTHING = 2.0  # px, the Gaussian's sigma over which single paths' differences average out
EFFECT_FLOOR = 0.03  # an effect counts where it moves the plate at least this share of the way to black or white
OUTSIDE = 0.5 / 255  # coverage below this: the object is absent from the pixel


def least_alpha(image: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """The least alpha (H, W) with which some colour in [0, 1] composited over `plate` gives `image`
    (both (H, W, 3) in [0, 1]): per channel, a darkening d needs d / plate (over black), a brightening
    d / (1 - plate) (over white); the pixel needs the largest."""
    difference = image.astype(np.float64) - plate
    darker = np.where(difference < 0, -difference / np.maximum(plate, 1e-9), 0.0)
    brighter = np.where(difference > 0, difference / np.maximum(1.0 - plate, 1e-9), 0.0)
    return np.clip(np.maximum(darker, brighter).max(axis=2), 0.0, 1.0)


def layer_colour(image: np.ndarray, plate: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The straight colour that, at `alpha` over `plate`, gives `image` (black where alpha is 0)."""
    a = alpha[..., None]
    colour = plate + (image.astype(np.float64) - plate) / np.maximum(a, 1e-9)
    return np.where(a > 0, np.clip(colour, 0.0, 1.0), 0.0)


def smoothed(image: np.ndarray, plate: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """The plate times the image's local ratio to it: per channel, the image's mean over the pixels `outside`
    the object (a Gaussian of EFFECT_SMOOTHING px) over the plate's mean there. A shadow darkens by a share,
    whatever the texture under it, so inside a shadow this is the image; single paths' differences average
    out, and the object's own colour never spreads past its edge."""
    weight = outside.astype(np.float32)[..., None]
    blur = {"ksize": (0, 0), "sigmaX": EFFECT_SMOOTHING, "borderType": cv2.BORDER_REFLECT}
    image_mean = cv2.GaussianBlur((image * weight).astype(np.float32), **blur)
    plate_mean = cv2.GaussianBlur((plate * weight).astype(np.float32), **blur)
    ratio = np.where(plate_mean > 1e-6, image_mean / np.maximum(plate_mean, 1e-6), 1.0)
    return np.clip(np.where(weight > 0, plate * ratio, plate), 0.0, 1.0)


def effect_alpha(alone: np.ndarray, plate: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """The object's effect outside itself (H, W): the least alpha of its smoothed difference where that
    reaches EFFECT_FLOOR and the object is absent; 0 elsewhere."""
    outside = coverage < OUTSIDE
    alpha = least_alpha(smoothed(alone, plate, outside), plate)
    return np.where((alpha >= EFFECT_FLOOR) & outside, alpha, 0.0)


def object_layer(alone: np.ndarray, plate: np.ndarray, coverage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The object's true layer, straight RGBA (H, W, 4) in [0, 1], and its effect alpha (H, W).

    alone: the frame with this object alone; plate: with none; coverage: the object's own share of each
    pixel when alone. The alpha is the coverage where the object is, else its effect; the colour gives
    the (smoothed, outside the object) render with it alone over the plate.
    """
    effect = effect_alpha(alone, plate, coverage)
    alpha = np.where(coverage >= OUTSIDE, np.maximum(coverage, least_alpha(alone, plate)), effect)
    outside = coverage < OUTSIDE
    target = np.where(outside[..., None], smoothed(alone, plate, outside), alone)
    rgba = np.concatenate([layer_colour(target, plate, alpha), alpha[..., None]], axis=2)
    return rgba, effect
