"""The plate matte: no layer where the frame shows exactly the background, to within the frame's noise."""

from __future__ import annotations

import torch

from omnimatte.model import colour_difference


def plate_matte(frame: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, threshold: float) -> torch.Tensor:
    """How much each pixel (1, 1, H, W) may hold any layer: 0 where the frame shows exactly the background.

    With a sharp background, a pixel whose colour equals the background's needs no layer
    there, whatever the network's smooth alpha says (the gaps between a dog's legs, the
    halo a coarse mask leaves). The largest channel difference d (0..1) against the
    threshold gives clamp(d / t, 0, 1), where t is `threshold` or, on noisy footage,
    three times the frame's median d over the pixels no layer holds, if that is larger.
    """
    difference = colour_difference(frame, background)
    return (difference / plate_threshold(difference, alpha, threshold)).clamp(0, 1)


def plate_threshold(difference: torch.Tensor, alpha: torch.Tensor, threshold: float) -> float:
    """The colour difference past which a pixel surely shows more than the background, given the frame's
    `difference` from it (colour_difference): `threshold`, or three times the median difference over the
    pixels no layer holds (the frame's noise), if that is larger."""
    empty = (alpha.amax(0, keepdim=True) < 0.01)
    noise = float(difference[empty].median()) if bool(empty.any()) else 0.0
    return max(threshold, 3.0 * noise)
