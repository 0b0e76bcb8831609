"""Detail transfer: what the network could not reproduce goes into the layers' colour.

The network renders at its own (often lower) resolution and smooths what it cannot model
(fine texture, film grain, a leaf's edge). The residual between the frame and the layers'
composite is added to each foreground layer's colour, attenuated by the layers in front of
it, so the layers composite back into the frame and that detail still belongs to some layer.
"""

from __future__ import annotations

import torch


def transfer_detail(frame: torch.Tensor, composite: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The layers' colour (L, 3, H, W) in [-1, 1], back to front, with the residual between the frame (1, 3, H, W) and
    their `composite` added to each, times what the layers in front of it let through; alpha (L, 1, H, W) stays."""
    residual = frame - composite
    covered = torch.zeros_like(alpha[:1])
    adjusted = []
    for i in reversed(range(len(rgb))):
        adjusted.append(rgb[i:i + 1] + (1.0 - covered) * residual)
        covered = alpha[i:i + 1] + (1.0 - alpha[i:i + 1]) * covered
    return torch.cat(adjusted[::-1]).clamp(-1, 1)
