"""Claiming for the nearest layer what the frame shows beyond the background: the effects the network missed.

The background is static and sharp, so whatever a frame shows beyond it, away from every
layer, was put there by something that moves: an object's shadow, its reflection, the dust
it raises. The network often leaves such an effect at zero alpha: its layer's colour learns
only where its alpha is above zero, and over a faint cast shadow that colour is at right
angles to the darkening, so the reconstruction gives the alpha no gradient to rise. The
frame itself says where the effects are: regions where it differs from the background by
more than noise, found on a smoothed residual so that the canvas's texture errors (zero
mean, a pixel or two wide) cancel. Each such region goes whole to the layer whose object is
nearest, within a reach proportional to the object's size, at the least alpha with which any
colour explains the frame there, and in that colour.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from omnimatte.train.alpha_fit import least_alpha

# A pixel is free for a claim where every layer's alpha is below this.
FREE_ALPHA = 0.1
# An object is where its layer's alpha is above this; reach and distances are measured from it.
OBJECT_ALPHA = 0.5
# The least alpha a region must need (on the smoothed residual) to be an effect, or three times the
# frame's median need over the free pixels where noise is higher (real footage).
NEED_THRESHOLD = 0.04
NOISE_FACTOR = 3.0
# Regions smaller than this share of the frame are noise.
MIN_REGION_SHARE = 7e-4
# A region is claimed by a layer only if it comes within this many times the object's size
# (the square root of its area in the frame) of the object: a ball's shadow on the ground is a few
# ball sizes away at the top of a bounce.
REACH = 4.0


def _masked_blur(image: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of `image` over the pixels `weight` selects, normalised so the others do not bleed in."""
    radius = int(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()

    def blur(x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"),
                     kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
        return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"),
                        kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)

    return blur(image * weight) / blur(weight).clamp_min(1e-3)


def effect_regions(frame: torch.Tensor, background: torch.Tensor, free: torch.Tensor) -> np.ndarray:
    """Connected regions (H, W) int labels, 0 = none, where the free pixels' smoothed residual needs a layer."""
    height, width = frame.shape[-2:]
    sigma = max(1.0, min(height, width) / 64)
    weight = free.float()
    smooth_background = _masked_blur(background, weight, sigma)
    need = least_alpha(_masked_blur(frame, weight, sigma) - smooth_background, smooth_background) * weight
    noise = float(need[free].median()) if bool(free.any()) else 0.0
    significant = (need[0, 0] > max(NEED_THRESHOLD, NOISE_FACTOR * noise)).cpu().numpy().astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(significant, connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < MIN_REGION_SHARE * height * width)
    labels[np.isin(labels, small)] = 0
    return labels


def claim_effects(frame: torch.Tensor, background: torch.Tensor, rgb: torch.Tensor,
                  alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers' colour (L, 3, H, W) and alpha (L, 1, H, W) with the frame's (1, 3, H, W) unexplained regions added.

    A region goes to the layer whose object (alpha > OBJECT_ALPHA) is nearest, if within
    REACH object sizes; there the layer's alpha becomes at least the least alpha that explains
    the frame over the background, in the colour that then gives the frame exactly.
    """
    free = alpha.amax(0, keepdim=True) < FREE_ALPHA
    labels = effect_regions(frame, background, free)
    count = int(labels.max()) + 1
    if count == 1:
        return rgb, alpha
    flat = labels.ravel()
    labelled = np.flatnonzero(flat)
    owner_distance = np.full(count, np.inf)
    owner = np.full(count, -1)
    for i, layer_alpha in enumerate(alpha[:, 0].cpu().numpy()):
        solid = (layer_alpha > OBJECT_ALPHA).astype(np.uint8)
        if not solid.any():
            continue
        distance = cv2.distanceTransform(1 - solid, cv2.DIST_L2, 3).ravel()
        nearest = np.full(count, np.inf)
        np.minimum.at(nearest, flat[labelled], distance[labelled])
        closer = (nearest < owner_distance) & (nearest <= REACH * np.sqrt(solid.sum()))
        owner_distance[closer], owner[closer] = nearest[closer], i
    owner[0] = -1
    need = least_alpha(frame - background, background)
    colour = (background + (frame - background) / need.clamp_min(1e-3)).clamp(-1, 1)
    owners = torch.from_numpy(owner[labels]).to(alpha.device)
    rgb, alpha = rgb.clone(), alpha.clone()
    for i in range(len(alpha)):
        raise_to = (owners == i) & free[0, 0] & (need[0, 0] > alpha[i, 0])
        alpha[i, 0] = torch.where(raise_to, need[0, 0], alpha[i, 0])
        rgb[i] = torch.where(raise_to, colour[0], rgb[i])
    return rgb, alpha
