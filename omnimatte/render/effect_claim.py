"""Claiming for the layer that caused it what the frame shows beyond the background: the effects the network missed.

The background is static and sharp, so whatever a frame shows beyond it, away from every
layer, was put there by something that moves: an object's shadow, its reflection, the dust
it raises. The network often leaves such an effect at zero alpha: its layer's colour learns
only where its alpha is above zero, and over a faint cast shadow that colour is at right
angles to the darkening, so the reconstruction gives the alpha no gradient to rise. The
frame itself says where the effects are: regions where it differs from the background by
more than noise, judged on a smoothed residual so that the canvas's texture errors (signed,
a pixel or two wide) cancel. Each such region goes whole to the layer whose object is
nearest, within a reach proportional to the object's size, or, where several objects reach
it, to the one it moves with over the frames around (effect_motion); there the layer's alpha
is raised to the least alpha with which any colour explains the frame, in that colour.

A region that stays where it is on the background is no object's effect, though: a standing
thing sliding over the ground under parallax, water, a registration error, a patch the canvas
never learnt. Each region is followed over the frames around (effect_motion): where staying put
(carried by the camera alone) lands clearly more of it on their effects than moving with its
object does, it is left out. The background fit's maps (what moves by itself, what misfits) say
how clear that must be, and what to do where too few frames show the region. Nor is a region that
does not move with its object but has motion of its own, another way (an unmasked mover): its
optical flow, the camera's taken out, says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

import cv2
import numpy as np
import torch

from omnimatte.model import colour_difference, composite_over
from omnimatte.render.alpha_fit import layer_residual, least_alpha, least_alpha_colour
from omnimatte.render.blur import masked_blur

if TYPE_CHECKING:  # effect_motion imports this module
    from omnimatte.render.effect_motion import FrameMotion

# A pixel is free for a claim where every layer's alpha is below this.
FREE_ALPHA = 0.1
# An object is where its layer's alpha is above this; reach and distances are measured from it.
OBJECT_ALPHA = 0.5
# A pixel belongs to an effect where, on the smoothed images, some layer would need an alpha of
# at least NEED_THRESHOLD to explain the frame, or NOISE_FACTOR times the median need over the free
# pixels if that is larger (noisy footage, a canvas a little off everywhere: only what stands out
# counts, and a change over most of the frame, such as a lighting change, is no object's effect),
# and where the frame differs from the background by more than DIFFERENCE_THRESHOLD (largest
# channel, 0..1; about 4 levels of 255), so that a small error over a near-white or near-black
# background, where a tiny change needs a large alpha, is not one.
NEED_THRESHOLD = 0.04
NOISE_FACTOR = 3.0
DIFFERENCE_THRESHOLD = 0.015
# Regions smaller than this share of the frame (or than the smoothing's own footprint) are noise.
MIN_REGION_SHARE = 7e-4
# A region is claimed by a layer only if it comes within this many times the object's size
# (the square root of its area in the frame) of the object: a ball's shadow on the ground is a few
# ball sizes away at the top of a bounce.
REACH = 4.0
# Among objects that reach a region, the one it moves with wins over the nearest only by more than
# this share of the region (effect_motion), judged on at least MOTION_FRAMES frames: a near tie keeps
# the nearest. A nearest that could not be followed counts as MOTION_UNKNOWN_NEAREST (half the region
# carried onto effects), so weak evidence for another object does not take the region from it. The
# overlap merge settles a region several layers hold alike by the same margin, an unfollowed holder
# counting as MOTION_UNKNOWN_NEAREST there too.
MOTION_MARGIN = 0.05
MOTION_FRAMES = 2
MOTION_UNKNOWN_NEAREST = 0.5
# How a region (H, W) bool of a frame moves with layer i's object: per frame it was followed to, the share of it that
# lands on that frame's effects (effect_motion.FrameMotion).
MovesWith = Callable[[np.ndarray, int], dict[int, float]]
# Part of the background stays where it is: carried by the camera alone to the frames around, at least
# this share of it lands on what they show beyond the background again.
STAYS_SHARE = 0.25
# Staying put must carry this many times as much of a region onto effects as moving with its object does for the
# region to be no effect, except where the background fit already finds the background moving by itself.
STAYS_RATIO = 2.0


def smoothing_sigma(height: int, width: int) -> float:
    """The Gaussian's sigma, in pixels, at which effects are judged in a frame of this size: a 64th of its short
    side (4 px at 256), wide enough that the canvas's signed texture errors cancel."""
    return max(1.0, min(height, width) / 64)


def effect_regions(frame: torch.Tensor, background: torch.Tensor, free: torch.Tensor) -> np.ndarray:
    """Connected regions (H, W) int labels, 0 = none, where the free pixels' smoothed residual needs a layer."""
    height, width = frame.shape[-2:]
    sigma = smoothing_sigma(height, width)
    weight = free.to(frame.dtype)
    smooth_frame, smooth_background = masked_blur(frame, weight, sigma), masked_blur(background, weight, sigma)
    need = least_alpha(smooth_frame - smooth_background, smooth_background)
    noise = float(need[free].median()) if bool(free.any()) else 0.0
    significant = (free & (need > max(NEED_THRESHOLD, NOISE_FACTOR * noise))
                   & (colour_difference(smooth_frame, smooth_background) > DIFFERENCE_THRESHOLD))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(significant[0, 0].cpu().numpy().astype(np.uint8),
                                                               connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < max(MIN_REGION_SHARE * height * width, math.pi * sigma ** 2))
    labels[np.isin(labels, small)] = 0
    return labels


@dataclass(frozen=True)
class UnexplainedBackground:
    """Where the background breaks the camera model (background_fit), bool of one shape each, (H, W) for a frame or
    (T, H, W) for a clip. moves_by_itself: parallax, water, an unmasked mover; misfit: what fits nothing far from
    every object (a registration error, or an object's effect cast far)."""

    moves_by_itself: torch.Tensor
    misfit: torch.Tensor

    def frame(self, t: int) -> UnexplainedBackground:
        return UnexplainedBackground(self.moves_by_itself[t], self.misfit[t])


def motion_shares(region: np.ndarray, layer: int, motion: FrameMotion) -> tuple[float, float] | None:
    """How much of `region` (H, W) bool moving with layer `layer`'s object carries onto effects, and how much staying
    where it is on the background (the camera alone carrying it) does: the means over the frames both were followed
    to; None where they share fewer than MOTION_FRAMES."""
    with_object, staying = motion(region, layer), motion.stays(region)
    common = set(with_object) & set(staying)
    if len(common) < MOTION_FRAMES:
        return None
    return float(np.mean([with_object[s] for s in common])), float(np.mean([staying[s] for s in common]))


def is_no_effect(region: np.ndarray, layer: int, unexplained: UnexplainedBackground | None,
                 motion: FrameMotion | None) -> bool:
    """Whether owned `region` (H, W) bool is no effect of layer `layer`'s object, but part of the background that
    stays where it is: staying put (carried by the camera alone) lands at least STAYS_SHARE of it on the frames'
    effects around, and more than moving with the object does: by MOTION_MARGIN where more of it lies where the
    background fit finds the background moving by itself than where it finds a misfit, STAYS_RATIO times as much
    elsewhere (an object that moves slowly carries its shadow little further than staying put does). Where too few
    frames show it, it is none only where the fit finds it moving by itself. A region that moving with the object does
    not land on effects (less than STAYS_SHARE of it, or too few frames to tell) and whose own flow goes its own way
    (effect_motion's own_way: a person nobody masked, a pole sliding by under parallax) is none either."""
    moves_by_itself = False
    if unexplained is not None:
        moving = int((region & unexplained.moves_by_itself).sum())
        moves_by_itself = moving > 0 and moving >= int((region & unexplained.misfit).sum())
    shares = None if motion is None else motion_shares(region, layer, motion)
    if motion is not None and (shares is None or shares[0] < STAYS_SHARE) and motion.own_way(region, layer):
        return True
    if shares is None:
        return moves_by_itself
    with_object, staying = shares
    if staying < STAYS_SHARE:
        return False
    return staying > (with_object + MOTION_MARGIN if moves_by_itself else STAYS_RATIO * with_object)


def set_aside_no_effects(labels: np.ndarray, owner: np.ndarray, unexplained: UnexplainedBackground | None,
                         motion: FrameMotion | None) -> np.ndarray:
    """The regions `labels` (H, W) without those that are no effect of their owner's object (is_no_effect)."""
    labels = labels.copy()
    for label in np.flatnonzero(owner >= 0):
        region = labels == label
        if region.any() and is_no_effect(region, int(owner[label]), unexplained, motion):
            labels[region] = 0
    return labels


def region_owners(labels: np.ndarray, alpha: torch.Tensor,
                  moves_with: MovesWith | None = None) -> np.ndarray:
    """Per region label, the index of the layer (L, 1, H, W) that owns it, or -1.

    The owner is the layer whose object is nearest, within reach. Where several objects reach
    a region and `moves_with(region, layer)` is given (per frame it was followed to, the share
    of the region that moving with the layer carries onto effects; effect_motion), the
    candidates followed to at least MOTION_FRAMES frames are compared on the frames they share:
    the one the region moves with best owns it if it beats the nearest by more than
    MOTION_MARGIN (or, where the nearest could not be followed, scores above
    MOTION_UNKNOWN_NEAREST + MOTION_MARGIN).
    """
    count = int(labels.max()) + 1
    flat = labels.ravel()
    labelled = np.flatnonzero(flat)
    nearest = np.full((len(alpha), count), np.inf)
    for i, layer_alpha in enumerate(alpha[:, 0].float().cpu().numpy()):
        solid = (layer_alpha > OBJECT_ALPHA).astype(np.uint8)
        if not solid.any():
            continue
        distance = cv2.distanceTransform(1 - solid, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).ravel()
        np.minimum.at(nearest[i], flat[labelled], distance[labelled])
        nearest[i, nearest[i] > REACH * np.sqrt(solid.sum())] = np.inf
    owner = np.where(np.isfinite(nearest).any(0), nearest.argmin(0), -1)
    if moves_with is None:
        return owner  # label 0 (no region) has no labelled pixel, so no distance and no owner
    for label in np.flatnonzero(np.isfinite(nearest).sum(0) > 1):
        scores = followed_scores(labels == label, np.flatnonzero(np.isfinite(nearest[:, label])), moves_with)
        if not scores:
            continue
        best = max(scores, key=scores.get)
        if scores[best] > scores.get(int(owner[label]), MOTION_UNKNOWN_NEAREST) + MOTION_MARGIN:
            owner[label] = best
    return owner


def followed_scores(region: np.ndarray, candidates: Iterable[int], moves_with: MovesWith) -> dict[int, float]:
    """Per candidate layer that `region` (H, W) bool was followed with to at least MOTION_FRAMES frames
    (`moves_with(region, layer)`: per frame, the share of the region that moving with the layer's object carries
    onto effects; effect_motion), its mean share over the frames every such candidate was followed to; empty
    where no candidate was followed or they share fewer than MOTION_FRAMES frames."""
    followed = {int(i): shares for i in candidates if len(shares := moves_with(region, int(i))) >= MOTION_FRAMES}
    if not followed:
        return {}
    common = set.intersection(*(set(shares) for shares in followed.values()))
    if len(common) < MOTION_FRAMES:
        return {}
    return {i: float(np.mean([shares[s] for s in common])) for i, shares in followed.items()}


def claim_effects(frame: torch.Tensor, background: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor,
                  motion: FrameMotion | None = None,
                  unexplained: UnexplainedBackground | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers' colour (L, 3, H, W) and alpha (L, 1, H, W), back to front, with the frame's (1, 3, H, W) effects.

    Each region goes to its owner (region_owners; `motion`, how regions of this frame move (effect_motion),
    settles regions several objects reach), unless it stays put on the background rather than moving with the
    owner's object (set_aside_no_effects; `unexplained`, where the background fit finds the frame's background
    breaking the camera model, says how clearly; without `motion` only what the fit finds moving by itself).

    In a region a layer owns, its alpha is raised (never lowered) to the least alpha with which
    some colour, over the layers behind it and seen through the faint alpha of those in front,
    gives the frame; its colour there becomes that colour, so the composite shows the frame.
    """
    if len(alpha) == 0:
        return rgb, alpha
    free = alpha.amax(0, keepdim=True) < FREE_ALPHA
    labels = effect_regions(frame, background, free)
    if labels.max() == 0:
        return rgb, alpha
    owner = region_owners(labels, alpha, motion)
    if unexplained is not None:
        unexplained = UnexplainedBackground(unexplained.moves_by_itself.cpu().numpy().reshape(labels.shape),
                                            unexplained.misfit.cpu().numpy().reshape(labels.shape))
    labels = set_aside_no_effects(labels, owner, unexplained, motion)
    owners = torch.from_numpy(np.where(labels > 0, owner[labels], -1)).to(alpha.device)
    rgb, alpha = rgb.clone(), alpha.clone()
    below = background
    for i in range(len(alpha)):
        owned = owners == i
        if bool(owned.any()):
            residual, through = layer_residual(frame, below, rgb, alpha, i)
            need, colour = least_alpha_colour(residual, below, through)
            raise_to = owned & (need[0, 0] > alpha[i, 0])
            alpha[i, 0] = torch.where(raise_to, need[0, 0], alpha[i, 0])
            rgb[i] = torch.where(raise_to, colour[0], rgb[i])
        below = composite_over(below, [rgb[i:i + 1]], [alpha[i:i + 1]])
    return rgb, alpha
