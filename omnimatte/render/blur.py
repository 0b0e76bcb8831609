"""The Gaussian blur the rendering steps judge images at: effects at the effect claim's scale, the plate matte's
difference on noisy footage, the overlap merge's holdings; and the same over some pixels alone (masked_blur): the
effect claim's residual away from the masks, the alpha fit's on a noisy frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) blurred by a separable Gaussian of `sigma` pixels (3 sigmas each side), the border replicated."""
    radius = int(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    rows = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"),
                    kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(F.pad(rows, (0, 0, radius, radius), mode="replicate"),
                    kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def masked_blur(image: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """`image` (N, C, H, W) blurred by gaussian_blur over the pixels `weight` (N, 1, H, W) selects, normalised by the
    weight blurred alike, so that the other pixels do not bleed in."""
    return gaussian_blur(image * weight, sigma) / gaussian_blur(weight, sigma).clamp_min(1e-3)
