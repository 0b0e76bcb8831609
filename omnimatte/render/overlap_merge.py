"""The overlap merge: outside the objects, what a pixel holds belongs to one layer.

Two objects that move together (a person walking a dog) give the network no motion to tell
their effects apart, so it can split one shadow between their layers; elsewhere one layer keeps
faint alpha over another object's shadow. Either way, editing one object leaves part of an effect
behind, and the diagnose stage's overlap check flags the pair.

Outside every coarse mask, a pixel goes to the layer that holds most alpha around it (each
layer's alpha smoothed at the effect claim's scale, so that an effect goes whole to one layer
and a stray pixel of another does not decide) where that layer holds at least DOMINANCE times
as much as any other; the owner takes what every layer held there, composited into one: its
alpha and colour are those of the layers over one another, so the frame's composite does not
change. Where two layers hold comparable amounts, nothing moves: the network found no reason to
prefer one, and giving the effect to the wrong object would lose it from the right one (the
diagnose stage's overlap check still reports it). Inside a mask nothing moves either: there one
layer in front of another is an occlusion, not a shared effect.
"""

from __future__ import annotations

import torch

from omnimatte.model import composite_over
from omnimatte.render.alpha_fit import masks_at
from omnimatte.render.blur import gaussian_blur
from omnimatte.render.effect_claim import smoothing_sigma

# A layer owns a pixel where its smoothed alpha is at least this many times every other layer's.
DOMINANCE = 3.0
# Below this merged alpha a pixel's colour is left as it was (nothing shows of it).
VISIBLE = 1e-4


def owners(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel (1, 1, H, W), the layer of `alpha` (L >= 2, 1, H, W) that holds most around it (the largest alpha
    smoothed at the effect claim's scale; long) and whether it holds DOMINANCE times any other's there (bool)."""
    smoothed = gaussian_blur(alpha.float(), smoothing_sigma(*alpha.shape[-2:]))
    top_two = smoothed.topk(2, dim=0)
    dominant = (top_two.values[0:1] > 0) & (top_two.values[0:1] >= DOMINANCE * top_two.values[1:2])
    return top_two.indices[0:1], dominant


@torch.no_grad()
def merge_overlaps(rgb: torch.Tensor, alpha: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers' colour (L, 3, H, W) in [-1, 1] and alpha (L, 1, H, W), back to front, with each pixel outside the
    coarse masks (L, 1, h, w, at any resolution) that one layer dominates (owners()) held by that layer alone:
    the layers there composited into it. Returns the new colour and alpha."""
    if len(alpha) < 2:
        return rgb, alpha
    owner, dominant = owners(alpha)
    moves = dominant & ~masks_at(masks, tuple(alpha.shape[-2:])).any(0, keepdim=True)
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
