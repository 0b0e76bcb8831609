"""Shadows at the alpha by which they darken: black in the layer, not a grey drawn too opaque or too faint.

A shadow takes light away: the ground under it keeps its colour, only darker, by about the same
fraction in every channel. In the compositing equation that is black over the ground at
an alpha equal to that fraction, which is how the layer should hold it (and how it moves
with the layer onto another background). Under an open sky the fractions differ by a tint the
whole shadow shares: the sky still lights it, so a sun's shadow darkens blue least (on the
rendered suite the channels' shares differ by 18 to 26 % of their mean). The tint is measured
in each frame, per layer, as the median of the darkenings the layer holds, each weighted by how
much light it takes up to a tenth (shadow_tint: on a noisy frame a layer also holds specks darkened
by little more than the noise, whose shares are mostly noise, and counted alike they outvote the
shadow), and a darkening counts as even when it is even once that tint is divided out. The
network draws shadows in a smooth colour that is lighter than black (near its object the
colour follows the object's), so to darken the ground enough its alpha rises above the
shadow's (a grey shadow at one and a half times the true alpha, say). Early in training, and
while the alpha L1 term still pulls, it also holds the dense middle of a shadow too faint, so
the composite is lighter than the frame there. Where what a layer adds to the frame is such an even
darkening of what lies below it, outside every object's coarse mask (inside it, a dark
object over lighter ground would look the same), and the layer holds at least RAISE_FROM
of it, the layer's alpha is set to the least alpha that explains the frame, in the colour
that then does so exactly, which for an even darkening is black or near it. A darkening
the layer holds less of than that is not taken as its shadow and is left alone. On a frame whose
noise sets the plate threshold, the darkening and its least alpha are judged on the residual and the
ground blurred (blur_sigma): pixel by pixel, each pixel's own noise would decide whether it is a
shadow's and how dark, speckling the fitted alpha; the colour still adds the unblurred residual. On such
a frame evenness is judged per connected region of darkening (even_regions), by the channels' median
shares over it: even blurred, a shadow lit by the sky alone is where a render's or a sensor's noise is
strongest against the light, and pixel by pixel it left a third to two thirds of a shadow unfitted. On a
noiseless frame each pixel is judged alone, so a shadow stays apart from a coloured reflection that touches it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from omnimatte.model import composite_over
from omnimatte.render.alpha_fit import colour_at, layer_residual, least_alpha, masks_at
from omnimatte.render.blur import gaussian_blur

# A darkening counts where every channel loses at least half of MIN_DARKENING of its light and
# they lose MIN_DARKENING on average (a share: 0.02, about 3 levels of 255 on mid-grey ground) ...
MIN_DARKENING = 0.02
# ... by shares that differ by less than this fraction of their mean (an even darkening: a
# shadow's; the reflection of a coloured thing darkens the channels unevenly) ...
EVENNESS = 0.2
# ... over ground that is not nearly black in any channel (levels of 0..1), where a share is noise.
MIN_LIGHT = 0.04
# A shadow's tint: measured from at least this many pixels of darkening, and taken only while its channels' shares
# differ by less than this fraction of their mean (sky light tints a shadow; a reflection of a coloured thing more).
MIN_TINT_PIXELS = 64
MAX_TINT = 0.4
# A darkening counts fully toward the tint from this mean share of light taken, and by its share below it: specks
# darkened by little more than a noisy frame's noise count a fraction, while a dark reflection counts per pixel no more
# than a shadow does.
TINT_FULL_WEIGHT = 0.1
# On a noisy frame, a connected region of darkening is judged even by its median shares from at least this many
# pixels; a smaller one is not fitted (its median is as noisy as a pixel).
MIN_REGION_PIXELS = 16
# A layer holds a darkening as its shadow where its alpha is at least this share of the shadow's:
# there the alpha is set to the shadow's, up or down; below it, the darkening is not the layer's.
RAISE_FROM = 0.2


def darkening_share(residual: torch.Tensor, below: torch.Tensor, through: torch.Tensor) -> torch.Tensor:
    """The share (N, 3, H, W) of its light, per channel, that adding `residual` to the frame takes from `below` (seen
    through `through`)."""
    light = (below + 1.0) * through  # what black over `below` could take away, per channel
    return -residual / light.clamp_min(1e-3)


def darkening(share: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
    """Where `share` (darkening_share) darkens every channel, by MIN_DARKENING on average, over ground bright enough
    to tell: (N, 1, H, W) bool."""
    bright_enough = ((below + 1.0) * 0.5).amin(1, keepdim=True) > MIN_LIGHT
    return ((share.amin(1, keepdim=True) > 0.5 * MIN_DARKENING) & (share.mean(1, keepdim=True) > MIN_DARKENING)
            & bright_enough)


def weighted_median(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each row's median of `values` (C, K), each value counting by its column's weight in `weights` (K,): (C,)."""
    order = values.argsort(dim=1)
    cumulative = weights[order].cumsum(dim=1)
    middle = (cumulative < 0.5 * cumulative[:, -1:]).sum(dim=1, keepdim=True)
    return values.gather(1, order).gather(1, middle)[:, 0]


def shadow_tint(share: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The tint (1, 3, 1, 1), mean 1, by which the darkenings at `candidates` (1, 1, H, W) bool share their light
    out: the per-channel median of each share over its mean, each pixel weighted by that mean (how much light it
    takes) up to TINT_FULL_WEIGHT; neutral (ones) from fewer than MIN_TINT_PIXELS or past MAX_TINT."""
    neutral = torch.ones(1, 3, 1, 1, dtype=share.dtype, device=share.device)
    picked = share[0][:, candidates[0, 0]]  # (3, K)
    if picked.shape[1] < MIN_TINT_PIXELS:
        return neutral
    mean = picked.mean(0)
    tint = weighted_median(picked / mean, mean.clamp(max=TINT_FULL_WEIGHT))
    tint = tint / tint.mean()
    if float(tint.max() - tint.min()) >= MAX_TINT:
        return neutral
    return tint.view(1, 3, 1, 1)


def even(share: torch.Tensor, tint: torch.Tensor | None = None) -> torch.Tensor:
    """Where the channels' shares (darkening_share), `tint` (shadow_tint; neutral when None) divided out, lie within
    EVENNESS of their mean of each other: (N, 1, H, W) bool."""
    untinted = share if tint is None else share / tint
    lowest, highest = untinted.amin(1, keepdim=True), untinted.amax(1, keepdim=True)
    return highest - lowest < EVENNESS * untinted.mean(1, keepdim=True)


def even_regions(share: torch.Tensor, tint: torch.Tensor, darkened: torch.Tensor) -> torch.Tensor:
    """The pixels of `darkened` (1, 1, H, W) bool whose connected region (8-connected, at least MIN_REGION_PIXELS)
    darkens evenly: each channel's median share (darkening_share) over the region, `tint` (shadow_tint) divided out,
    within EVENNESS of their mean of each other (even). (1, 1, H, W) bool."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(darkened[0, 0].cpu().numpy().astype(np.uint8),
                                                               connectivity=8)
    labels = torch.from_numpy(labels).to(share.device)
    untinted = (share / tint)[0]  # (3, H, W)
    fitted = torch.zeros_like(darkened)
    for region in range(1, count):  # label 0: what is not darkened
        if stats[region, cv2.CC_STAT_AREA] < MIN_REGION_PIXELS:
            continue
        inside = labels == region
        medians = untinted[:, inside].median(dim=1).values.view(1, 3, 1, 1)
        if bool(even(medians)):
            fitted[0, 0] |= inside
    return fitted


def even_darkening(residual: torch.Tensor, below: torch.Tensor, through: torch.Tensor) -> torch.Tensor:
    """Where adding `residual` (N, 3, H, W) to the frame darkens `below` (seen through `through`) by about the same
    share in every channel: (N, 1, H, W) bool."""
    share = darkening_share(residual, below, through)
    return darkening(share, below) & even(share)


def fit_shadows(frame: torch.Tensor, background: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor,
                masks: torch.Tensor, blur_sigma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers (rgb (L, 3, H, W) in [-1, 1], alpha (L, 1, H, W), back to front) with the shadows they hold at the
    alpha by which they darken what lies below, outside every coarse mask (`masks` (L, 1, h, w), any size); a
    positive `blur_sigma` (px) judges the darkening on the residual and what lies below blurred by it, and its
    evenness per connected region (even_regions)."""
    outside = ~masks_at(masks, tuple(frame.shape[-2:])).any(0, keepdim=True)
    rgb, alpha = rgb.clone(), alpha.clone()
    below = background
    for i in range(len(rgb)):
        residual, through = layer_residual(frame, below, rgb, alpha, i)
        judged_residual, judged_below = ((gaussian_blur(residual, blur_sigma), gaussian_blur(below, blur_sigma))
                                         if blur_sigma > 0 else (residual, below))
        least = least_alpha(judged_residual, judged_below, through)
        held = alpha[i:i + 1] >= RAISE_FROM * least
        share = darkening_share(judged_residual, judged_below, through)
        darkened = outside & held & darkening(share, judged_below)
        tint = shadow_tint(share, darkened)
        fit = even_regions(share, tint, darkened) if blur_sigma > 0 else darkened & even(share, tint)
        alpha[i:i + 1] = torch.where(fit, least, alpha[i:i + 1])
        rgb[i:i + 1] = torch.where(fit, colour_at(residual, below, through, least), rgb[i:i + 1])
        below = composite_over(below, [rgb[i:i + 1]], [alpha[i:i + 1]])
    return rgb, alpha
