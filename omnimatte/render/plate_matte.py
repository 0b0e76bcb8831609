"""The plate matte: no layer where the frame shows exactly the background, to within the frame's noise."""

from __future__ import annotations

import torch

from omnimatte.model import colour_difference
from omnimatte.render.blur import gaussian_blur

#: On footage whose noise sets the plate matte's threshold, the matte judges the frame and the background blurred by
#: this Gaussian sigma (px). Pixel by pixel against three times the noise, each pixel's own noise decides how much of
#: a halo's alpha it keeps (a third on average, over ground that shows just the background); blurred, the noise
#: falls toward the setting's threshold while what a layer adds over an area stays. Noiseless frames are judged
#: pixel by pixel, where the difference is exact.
NOISE_BLUR_SIGMA = 1.5

#: A pixel surely shows more than the background once it differs from it by this many times the frame's noise (the
#: median difference where only the background shows): the plate matte's threshold and training's match rise to it.
NOISE_MARGIN = 3.0


def noise_aware_threshold(threshold: float, noise: float) -> float:
    """The colour difference past which a pixel surely shows more than the background: `threshold` (the setting), or
    NOISE_MARGIN times the `noise` (the median colour difference where only the background shows), if that is
    larger."""
    return max(threshold, NOISE_MARGIN * noise)


def noise_sets_threshold(difference: torch.Tensor, alpha: torch.Tensor, threshold: float) -> bool:
    """Whether the frame's noise, not the setting, sets the plate threshold, given the frame's `difference` from the
    background (colour_difference): NOISE_MARGIN times its median where no layer is (frame_noise) exceeds
    `threshold`.
    Steps that judge such a frame pixel by pixel would judge each pixel's own noise; they judge it blurred by
    NOISE_BLUR_SIGMA instead."""
    return NOISE_MARGIN * frame_noise(difference, alpha) > threshold


def plate_matte(frame: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, threshold: float,
                noisy: bool) -> torch.Tensor:
    """How much each pixel (1, 1, H, W) may hold any layer: 0 where the frame shows exactly the background.

    With a sharp background, a pixel whose colour equals the background's needs no layer
    there, whatever the network's smooth alpha says (the gaps between a dog's legs, the
    halo a coarse mask leaves). The largest channel difference d (0..1) against the
    threshold gives clamp(d / t, 0, 1), where t is `threshold`; on a `noisy` frame
    (noise_sets_threshold), d is measured on the frame and background blurred by NOISE_BLUR_SIGMA and t is
    NOISE_MARGIN times its median over the pixels no layer holds, if that is larger.
    """
    if not noisy:
        return (colour_difference(frame, background) / threshold).clamp(0, 1)
    blurred = colour_difference(gaussian_blur(frame, NOISE_BLUR_SIGMA), gaussian_blur(background, NOISE_BLUR_SIGMA))
    return (blurred / plate_threshold(blurred, alpha, threshold)).clamp(0, 1)


def frame_noise(difference: torch.Tensor, alpha: torch.Tensor) -> float:
    """The frame's noise as the plate matte sees it: the median `difference` (colour_difference from the
    background) over the pixels no layer holds (0 where every pixel holds some layer)."""
    empty = (alpha.amax(0, keepdim=True) < 0.01)
    return float(difference[empty].median()) if bool(empty.any()) else 0.0


def plate_threshold(difference: torch.Tensor, alpha: torch.Tensor, threshold: float) -> float:
    """The colour difference past which a pixel surely shows more than the background, given the frame's
    `difference` from it (colour_difference): noise_aware_threshold of `threshold` and the frame's noise
    (frame_noise)."""
    return noise_aware_threshold(threshold, frame_noise(difference, alpha))
