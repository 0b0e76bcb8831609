"""Alpha at the working resolution from a network that ran below it: guided upsampling.

Bilinear upsampling of a half-size alpha blurs its edges into a halo and loses thin
parts (legs, tails). Here the low-resolution alpha is fitted, window by window, as an
affine function of the low-resolution frame's colour (He et al.'s guided filter); the
fitted coefficients are smooth, so they are upsampled instead of the alpha and applied
to the full-resolution frame, whose edges the alpha then follows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _box(tensor: torch.Tensor, radius: int) -> torch.Tensor:
    return F.avg_pool2d(tensor, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def guided_upsample(alpha: torch.Tensor, guide_low: torch.Tensor, guide_high: torch.Tensor, radius: int = 2,
                    eps: float = 1e-3) -> torch.Tensor:
    """Upsample alphas (L, 1, h, w) to the size of guide_high (1, 3, H, W), guided by the frame at both sizes.

    Guides are colours in [0, 1]; `radius` is in low-resolution pixels; `eps` says how
    much colour change it takes to move the alpha (larger: smoother). Returns (L, 1, H, W) in [0, 1].
    """
    num_layers = alpha.shape[0]
    guide = guide_low.float()
    mean_guide = _box(guide, radius)  # (1, 3, h, w)
    mean_alpha = _box(alpha.float(), radius)  # (L, 1, h, w)
    covariance = _box(guide * alpha.float(), radius) - mean_guide * mean_alpha  # (L, 3, h, w)
    products = torch.stack([guide[:, i] * guide[:, j] for i in range(3) for j in range(3)], 1)
    variance = _box(products, radius) - torch.stack(
        [mean_guide[:, i] * mean_guide[:, j] for i in range(3) for j in range(3)], 1)
    height, width = guide.shape[-2:]
    system = variance[0].permute(1, 2, 0).reshape(height, width, 3, 3)
    system = system + eps * torch.eye(3, device=system.device, dtype=system.dtype)
    rhs = covariance.permute(0, 2, 3, 1).unsqueeze(-1)  # (L, h, w, 3, 1)
    slope = torch.linalg.solve(system.expand(num_layers, -1, -1, -1, -1), rhs).squeeze(-1).permute(0, 3, 1, 2)
    offset = mean_alpha - (slope * mean_guide).sum(1, keepdim=True)
    size = tuple(guide_high.shape[-2:])
    slope = F.interpolate(_box(slope, radius), size=size, mode="bilinear", align_corners=False)
    offset = F.interpolate(_box(offset, radius), size=size, mode="bilinear", align_corners=False)
    return ((slope * guide_high.float()).sum(1, keepdim=True) + offset).clamp(0, 1)
