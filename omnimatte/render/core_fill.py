"""Objects opaque where their coarse mask is sure of them: the core filled to what the frame shows.

Early in training, and wherever the network has not settled, an object's alpha sags inside
its own outline (to anywhere between 0.1 and 0.9 a few pixels in from its edge, in thin
parts such as feet and a tail's tip), and its colour makes up the difference, so the frame is
reproduced while the layer is half transparent. Nothing in the compositing equation
forbids that: a pixel can be "opaque, in the frame's colour" or "partly transparent, in a
stronger colour". Well inside an object's coarse mask (the core of alpha_fit.mask_cores),
where it is the front-most object the mask sees, the object is what the frame shows there,
so its alpha is raised to how far the frame is from what lies behind it, by the plate
matte's measure (fully opaque past its threshold), in the colour that then gives the frame
exactly. It is never lowered. Where the frame only darkens what lies behind, evenly, the
shadow under the object shows through a gap (between legs, under a body) and stays as it is.
"""

from __future__ import annotations

import torch

from omnimatte.model import composite_over
from omnimatte.render.alpha_fit import colour_at, layer_residual, least_alpha
from omnimatte.render.shadow_fit import even_darkening

# The object must be seen through what lies in front of it at least this much for its core to be filled.
MIN_THROUGH = 0.5


def fill_cores(frame: torch.Tensor, background: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor,
               cores: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers (rgb (L, 3, H, W) in [-1, 1], alpha (L, 1, H, W), back to front) with each alpha raised inside its
    core (`cores` (L, 1, H, W) bool) to min(1, d / threshold), d the largest channel difference (0..1) between
    the frame and what it would show without the layer."""
    rgb, alpha = rgb.clone(), alpha.clone()
    below = background
    for i in range(len(rgb)):
        residual, through = layer_residual(frame, below, rgb, alpha, i)
        shown = (residual.abs().amax(1, keepdim=True) * 0.5 / (threshold * through.clamp_min(1e-3))).clamp(0, 1)
        sagging = (cores[i:i + 1] & (through >= MIN_THROUGH) & (shown > alpha[i:i + 1])
                  & ~even_darkening(residual, below, through))
        target = torch.maximum(shown, least_alpha(residual, below, through))
        alpha[i:i + 1] = torch.where(sagging, target, alpha[i:i + 1])
        rgb[i:i + 1] = torch.where(sagging, colour_at(residual, below, through, target), rgb[i:i + 1])
        below = composite_over(below, [rgb[i:i + 1]], [alpha[i:i + 1]])
    return rgb, alpha
