"""The stray cut: no layer keeps alpha that neither reaches an object nor lies on anything the frame shows.

After the other steps a layer can still hold faint alpha scattered over the frame far from its
object: the network's alpha is rarely exactly zero, and over fine texture, which the canvas
reproduces a little soft, the frame differs from the background by a few levels pixel by pixel,
enough for the plate matte to let it pass. At the scale at which the effect claim judges the
frame (effect_regions: the residual smoothed, so that signed texture errors cancel) there is
nothing there. Summed over the frame, such alpha can outweigh a small object itself, and it
shows as a ghost of the ground's texture wherever the layer is composited.

Alpha is supported near some object's coarse mask (grown by MASK_MARGIN smoothing sigmas:
objects shadow and mirror each other), on a region where the smoothed frame differs from the
background (grown by EVIDENCE_GROWTH sigmas: a shadow's soft edge), or where it is joined to
either through alpha above STRAY_ALPHA (a penumbra fading out of its shadow, an effect the
network found that the residual barely shows). A layer keeps its alpha there and loses the
rest, through an edge a pixel or so soft; in a frame without its object and without anything
the frame shows beyond the background, it holds nothing.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from omnimatte.imaging.morphology import square_max
from omnimatte.render.alpha_fit import masks_at
from omnimatte.render.effect_claim import effect_regions, smoothing_sigma

# Around every coarse mask, alpha stands within this many smoothing sigmas (8 px at 256).
MASK_MARGIN = 2.0
# What the smoothed frame shows beyond the background supports alpha this many sigmas around it.
EVIDENCE_GROWTH = 2.0
# Alpha above this joins what it touches to the supported regions.
STRAY_ALPHA = 0.02
# The cut's edge is a box blur of this share of a sigma in radius (at least one pixel).
FEATHER = 0.25


def _grow(region: torch.Tensor, radius: float) -> torch.Tensor:
    """`region` (N, 1, H, W) bool grown by a square of `radius` pixels (at least one)."""
    r = max(1, round(radius))
    return square_max(region.float(), r) > 0.5


def supported(frame: torch.Tensor, background: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Where any layer's alpha is supported by itself (1, 1, H, W) bool: near some coarse mask (L, 1, h, w) or on
    what the frame (1, 3, H, W) shows beyond the background (1, 3, H, W), judged away from the masks."""
    height, width = frame.shape[-2:]
    sigma = smoothing_sigma(height, width)
    near = _grow(masks_at(masks, (height, width)).any(0, keepdim=True), MASK_MARGIN * sigma)
    evidence = torch.from_numpy(effect_regions(frame, background, ~near) > 0).to(near.device)[None, None]
    return near | _grow(evidence, EVIDENCE_GROWTH * sigma)


@torch.no_grad()
def cut_strays(frame: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Alpha (L, 1, H, W) kept where it is supported (supported()) or joined to support through alpha above
    STRAY_ALPHA, and cut elsewhere through a soft edge; frame and background (1, 3, H, W), coarse masks
    (L, 1, h, w) at any resolution."""
    if len(alpha) == 0:
        return alpha
    seeds = supported(frame, background, masks)[0, 0].cpu().numpy()
    keep = []
    for layer_alpha in alpha[:, 0].float().cpu().numpy():
        body = (layer_alpha > STRAY_ALPHA) | seeds
        _, labels = cv2.connectedComponents(body.astype(np.uint8), connectivity=8)
        reached = np.unique(labels[seeds])
        keep.append(np.isin(labels, reached[reached > 0]))
    kept = torch.from_numpy(np.stack(keep)[:, None]).to(alpha)
    radius = max(1, round(FEATHER * smoothing_sigma(*alpha.shape[-2:])))
    return alpha * F.avg_pool2d(kept, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
