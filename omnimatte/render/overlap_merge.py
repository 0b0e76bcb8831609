"""The overlap merge: outside the objects, what a pixel holds belongs to one layer.

Two objects that move together (a person walking a dog) give the network little motion to tell
their effects apart, so it can split one shadow between their layers; elsewhere one layer keeps
faint alpha over another object's shadow. Either way, editing one object leaves part of an effect
behind, and the diagnose stage's overlap check flags the pair.

Outside every coarse mask, a pixel goes to the layer that holds most alpha around it (each
layer's alpha smoothed at the effect claim's scale, so that an effect goes whole to one layer
and a stray pixel of another does not decide) where that layer holds at least DOMINANCE times
as much as any other; the owner takes what every layer held there, composited into one: its
alpha and colour are those of the layers over one another, so the frame's composite does not
change. Where two or more layers hold comparable amounts (each at least CONTESTED_ALPHA around it),
the network found no reason to prefer one, but the clip may: an effect moves with what causes it.
Each such contested region (its pixels that no layer dominates; those around it that one does go
to that one) is followed a few frames forward and back with each holder's motion (effect_motion,
as the effect claim settles a region several objects reach); the holder whose motion carries it
onto the effects those frames show best, by more than the claim's MOTION_MARGIN over every other
(a holder it could not be followed with counts as the claim's MOTION_UNKNOWN_NEAREST, half the
region), takes the region whole. Where the motion does not tell (objects that move alike, too few
frames that show the region), nothing moves: giving the effect to the wrong object
would lose it from the right one, and the diagnose stage's overlap check still reports it. Inside
a mask nothing moves either: there one layer in front of another is an occlusion, not a shared
effect.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from omnimatte.model import composite_over
from omnimatte.render.alpha_fit import masks_at
from omnimatte.render.blur import gaussian_blur
from omnimatte.render.effect_claim import (MIN_REGION_SHARE, MOTION_MARGIN, MOTION_UNKNOWN_NEAREST, MovesWith,
                                           followed_scores, smoothing_sigma)

# A layer owns a pixel where its smoothed alpha is at least this many times every other layer's.
DOMINANCE = 3.0
# Below this merged alpha a pixel's colour is left as it was (nothing shows of it).
VISIBLE = 1e-4
# Outside the masks, a pixel no layer dominates is contested where a second layer holds at least this around it
# (smoothed; a faint share of a shadow counts: the diagnose stage's overlap check counts every level).
CONTESTED_ALPHA = 0.02


def owners(alpha: torch.Tensor, outside: torch.Tensor,
           motion: MovesWith | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel (1, 1, H, W), the layer of `alpha` (L >= 2, 1, H, W) that owns it (long) and whether one does
    (bool), among the pixels `outside` (1, 1, H, W) bool every coarse mask: the layer that holds most around it
    (the largest alpha smoothed at the effect claim's scale) where it holds DOMINANCE times any other's there;
    with `motion`, also the contested regions' (contested_owners)."""
    smoothed = gaussian_blur(alpha.float(), smoothing_sigma(*alpha.shape[-2:]))
    top_two = smoothed.topk(2, dim=0)
    owner = top_two.indices[0:1]
    dominant = (top_two.values[0:1] > 0) & (top_two.values[0:1] >= DOMINANCE * top_two.values[1:2]) & outside
    if motion is None:
        return owner, dominant
    contested = outside & ~dominant & (top_two.values[1:2] >= CONTESTED_ALPHA)
    settled, settled_owner = contested_owners(contested[0, 0].cpu().numpy(), smoothed[:, 0].cpu().numpy(), motion)
    settled = torch.from_numpy(settled).to(alpha.device)[None, None]
    owner = torch.where(settled, torch.from_numpy(settled_owner).to(owner)[None, None], owner)
    return owner, dominant | settled


def contested_owners(contested: np.ndarray, smoothed: np.ndarray, motion: MovesWith) -> tuple[np.ndarray, np.ndarray]:
    """Of the contested pixels (H, W) bool, those whose region (8-connected, at least MIN_REGION_SHARE of the
    frame) moves with one of its holders (the layers whose `smoothed` alpha (L, H, W) reaches CONTESTED_ALPHA in it)
    better than with every other by more than MOTION_MARGIN (a holder it could not be followed with counts as
    MOTION_UNKNOWN_NEAREST), and that holder per pixel (H, W) int."""
    height, width = contested.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(contested.astype(np.uint8), connectivity=8)
    settled = np.zeros_like(contested)
    owner = np.zeros(contested.shape, np.int64)
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < MIN_REGION_SHARE * height * width:
            continue
        region = labels == label
        holders = np.flatnonzero(smoothed[:, region].max(1) >= CONTESTED_ALPHA)
        scores = followed_scores(region, holders, motion)
        if not scores:
            continue
        best = max(scores, key=scores.get)
        rival = max(scores.get(int(i), MOTION_UNKNOWN_NEAREST) for i in holders if i != best)
        if scores[best] > rival + MOTION_MARGIN:
            settled |= region
            owner[region] = best
    return settled, owner


@torch.no_grad()
def merge_overlaps(rgb: torch.Tensor, alpha: torch.Tensor, masks: torch.Tensor,
                   motion: MovesWith | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers' colour (L, 3, H, W) in [-1, 1] and alpha (L, 1, H, W), back to front, with each pixel outside the
    coarse masks (L, 1, h, w, at any resolution) that one layer owns (owners(); `motion`, how regions of this frame
    move, settles the contested ones) held by that layer alone: the layers there composited into it. Returns the new
    colour and alpha."""
    if len(alpha) < 2:
        return rgb, alpha
    outside = ~masks_at(masks, tuple(alpha.shape[-2:])).any(0, keepdim=True)
    owner, moves = owners(alpha, outside, motion)
    # The layers over black give their premultiplied colour; over nothing, in white, their combined alpha.
    alphas = list(alpha.split(1))
    premultiplied = composite_over(torch.zeros_like(rgb[:1]), list(rgb.split(1)), alphas)
    merged_alpha = composite_over(torch.zeros_like(alpha[:1]), [torch.ones_like(alpha[:1])] * len(alphas), alphas)
    merged_rgb = premultiplied / merged_alpha.clamp_min(VISIBLE)
    layer_index = torch.arange(len(alpha), device=alpha.device).view(-1, 1, 1, 1)
    owned = layer_index == owner
    new_alpha = torch.where(moves, torch.where(owned, merged_alpha, torch.zeros_like(alpha)), alpha)
    takes_colour = moves & owned & (merged_alpha > VISIBLE)
    new_rgb = torch.where(takes_colour, merged_rgb, rgb)
    return new_rgb, new_alpha
