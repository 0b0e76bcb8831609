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

What moves over the background as a whole by its own motion (the background fit's map: a standing
pole sliding over the ground under parallax, an unmasked passer-by) shows in the residual too, but it
is no object's effect, and where no layer holds it the background detail gives it back from the frame.
Away from every mask (beyond MASK_MARGIN) such a region supports nothing, is left out of the evidence
and holds no alpha, nor joins anything to support: the network, which explains with its layers what
one homography cannot, otherwise keeps the pole in the nearest object's layer. The same holds where
the learnt background took such a thing in (background_misses): one canvas for the whole clip, it
keeps a sliding pole at one place, and in the frames where the pole has gone a layer paints the
ground back over it there; the frame shows only the background, as the background fit's plate does.
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


def near_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Where alpha stands near some coarse mask (L, 1, h, w): their union at `size`, grown by MASK_MARGIN smoothing
    sigmas. (1, 1, H, W) bool."""
    return _grow(masks_at(masks, size).any(0, keepdim=True), MASK_MARGIN * smoothing_sigma(*size))


def background_misses(plate_view: torch.Tensor, background: torch.Tensor, crossed: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: where the model's background (1, 3, H, W) in [-1, 1] misses the frame's view of the background
    fit's plate (`plate_view`, (3, H, W) uint8) as a frame would that needs a layer (effect_regions), judged on
    `crossed` (H, W) bool alone (VideoTensors.crossed: the frame shows only the background, on ground something
    moving by itself crossed). There a layer's alpha only mends the learnt background."""
    judged = crossed.to(background.device)
    plate = plate_view.to(background)[None] / 127.5 - 1.0
    return torch.from_numpy(effect_regions(plate, background, judged[None, None]) > 0).to(judged.device) & judged


def supported(frame: torch.Tensor, background: torch.Tensor, masks: torch.Tensor,
              off_limits: torch.Tensor | None = None) -> torch.Tensor:
    """Where any layer's alpha is supported by itself (1, 1, H, W) bool: near some coarse mask (L, 1, h, w) or on
    what the frame (1, 3, H, W) shows beyond the background (1, 3, H, W), judged away from the masks and from
    `off_limits` (1, 1, H, W) bool, which supports nothing."""
    height, width = frame.shape[-2:]
    sigma = smoothing_sigma(height, width)
    near = near_masks(masks, (height, width))
    judged = ~near if off_limits is None else ~near & ~off_limits
    evidence = torch.from_numpy(effect_regions(frame, background, judged) > 0).to(near.device)[None, None]
    seeds = near | _grow(evidence, EVIDENCE_GROWTH * sigma)
    return seeds if off_limits is None else seeds & ~off_limits


@torch.no_grad()
def cut_strays(frame: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, masks: torch.Tensor,
               no_layer: torch.Tensor | None = None) -> torch.Tensor:
    """Alpha (L, 1, H, W) kept where it is supported (supported()) or joined to support through alpha above
    STRAY_ALPHA, and cut elsewhere through a soft edge; frame and background (1, 3, H, W), coarse masks
    (L, 1, h, w) at any resolution. `no_layer` (H, W) bool: what no object causes (what moves over the background
    as a whole by itself, VideoTensors.moves_coherently, and where the learnt background took it in,
    background_misses), where away from the masks no alpha stands, supports or joins."""
    if len(alpha) == 0:
        return alpha
    off_limits = None
    if no_layer is not None:
        if no_layer.dtype != torch.bool or tuple(no_layer.shape) != tuple(alpha.shape[-2:]):
            raise ValueError(f"the map of what no object causes must be bool at the alpha's size "
                             f"{tuple(alpha.shape[-2:])}, not {no_layer.dtype} {tuple(no_layer.shape)}")
        off_limits = no_layer.to(alpha.device)[None, None] & ~near_masks(masks, alpha.shape[-2:])
    seeds = supported(frame, background, masks, off_limits)[0, 0].cpu().numpy()
    outside = True if off_limits is None else ~off_limits[0, 0].cpu().numpy()
    keep = []
    for layer_alpha in alpha[:, 0].float().cpu().numpy():
        body = ((layer_alpha > STRAY_ALPHA) | seeds) & outside
        _, labels = cv2.connectedComponents(body.astype(np.uint8), connectivity=8)
        reached = np.unique(labels[seeds])
        keep.append(np.isin(labels, reached[reached > 0]))
    kept = torch.from_numpy(np.stack(keep)[:, None]).to(alpha)
    radius = max(1, round(FEATHER * smoothing_sigma(*alpha.shape[-2:])))
    return alpha * F.avg_pool2d(kept, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
