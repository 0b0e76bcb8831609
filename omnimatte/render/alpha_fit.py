"""Fitting the rendered alphas to the frame through the compositing equation.

The network's alpha is smooth: around an object it leaves a halo where the frame shows
only the background, and the plate matte cuts that halo only where the frame matches the
background to within its threshold. With each layer's own colour, the compositing
equation says how much of it the frame actually shows, pixel by pixel; this module lowers
each alpha to that amount, never below what any colour would need to explain the frame there
(so a faint shadow whose colour the network has not learned keeps its alpha), and never
raises it. Nearly every video codec keeps the chroma at half resolution (4:2:0, 4:2:2), so
beside a coloured edge a pixel's chroma holds some of the edge's colour, and a floor from every
channel would keep a ring of alpha around each coloured object; on such a clip
(VideoTensors.chroma_halved) the floor reads the frame's luma alone inside the coarse masks,
where an object's own colour is a pixel or two away, and every channel outside them, as a
faint effect that tints the channels unevenly (a sky-lit occlusion darkens blue most) needs.
On a frame whose noise sets the plate matte's threshold, each pixel's own noise would set its fit and its floor:
outside the coarse masks both read the residual averaged over the neighbouring pixels outside the masks (so no
object's own colour spreads into it), and where a layer adds less to the frame than that threshold (its colour close
to what lies below it, where the fit cannot judge it and the network's alpha would stand), its alpha is at most what
the averaged residual, grown by its own noise, could need: the halo a smooth network leaves over noisy ground goes,
a faint shadow spread over many pixels stays.
Well inside an object's coarse mask, where the network is sure of it, its alpha stands: there
the frame cannot tell "opaque, in the frame's colour" from "partly transparent, in a stronger
colour", and the network's smooth colour would make it the second.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from omnimatte.imaging.luma_chroma import luma
from omnimatte.imaging.morphology import square_max
from omnimatte.model import colour_difference, composite_over
from omnimatte.render.blur import masked_blur
from omnimatte.render.plate_matte import NOISE_BLUR_SIGMA, frame_noise

# Weight of the network's own alpha against the fit, in squared colour differences ([-1, 1]
# units, summed over channels): where the layer's colour is this close to what lies below it,
# the frame cannot tell how much of the layer shows and the network's alpha stands.
NETWORK_ALPHA_WEIGHT = 0.003
# The core of an object: its coarse mask shrunk by this share of the frame's short side (3 px at
# 128, 5 at 256), past the slack a coarse mask has around the object (the ground the network can
# hold opaque in that ring is the fit's to cut); there an alpha of at least CORE_ALPHA stands.
CORE_EROSION = 1 / 48
CORE_ALPHA = 0.9


def masks_at(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Coarse masks (L, 1, h, w) at the working size `size`: (L, 1, H, W) bool."""
    return F.interpolate(masks.float(), size=size, mode="bilinear", align_corners=False) > 0.5


def mask_cores(inside: torch.Tensor) -> torch.Tensor:
    """The cores (L, 1, H, W) bool of coarse masks already at the working size (masks_at: (L, 1, H, W) bool)."""
    radius = max(1, round(min(inside.shape[-2:]) * CORE_EROSION))
    return -square_max(-inside.float(), radius) > 0.5


def least_alpha(residual: torch.Tensor, below: torch.Tensor, through: torch.Tensor | float = 1.0) -> torch.Tensor:
    """The least alpha (N, 1, H, W) with which some colour in [-1, 1] over `below`, seen through
    `through` (what the layers in front let pass), adds `residual` (N, 3, H, W) to the frame."""
    reach = torch.where(residual > 0, 1.0 - below, 1.0 + below) * through
    return (residual.abs() / reach.clamp_min(1e-3)).amax(1, keepdim=True).clamp(0, 1)


def least_luma_alpha(residual: torch.Tensor, below: torch.Tensor, through: torch.Tensor | float = 1.0) -> torch.Tensor:
    """The least alpha (N, 1, H, W) with which some colour in [-1, 1] over `below`, seen through `through`, adds the
    luma of `residual` (N, 3, H, W) to the frame's: least_alpha of the luma planes (the luma weights sum to one, so a
    luma in [-1, 1] is some colour's)."""
    return least_alpha(luma(residual), luma(below), through)


def least_alpha_colour(residual: torch.Tensor, below: torch.Tensor,
                       through: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The least alpha (least_alpha) and the colour (N, 3, H, W) in [-1, 1] with which a layer at that alpha
    adds `residual` exactly: below + residual / (through * alpha)."""
    alpha = least_alpha(residual, below, through)
    return alpha, colour_at(residual, below, through, alpha)


def colour_at(residual: torch.Tensor, below: torch.Tensor, through: torch.Tensor | float,
              alpha: torch.Tensor) -> torch.Tensor:
    """The colour (N, 3, H, W) in [-1, 1] with which a layer at `alpha` over `below`, seen through `through`,
    adds `residual` to the frame (exactly, where some colour in range can)."""
    return (below + residual / (through * alpha).clamp_min(1e-3)).clamp(-1, 1)


def layer_residual(frame: torch.Tensor, below: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor,
                   i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What layer i must add to the frame over `below` (what lies behind it), and what the layers in
    front of it let through: frame = front + through * (below + alpha_i * (rgb_i - below))."""
    # The layers in front, composited over nothing: their premultiplied colour.
    front = composite_over(torch.zeros_like(below), list(rgb[i + 1:]), list(alpha[i + 1:]))
    through = (1.0 - alpha[i + 1:]).prod(0, keepdim=True)
    return frame - front - through * below, through


def average_outside(image: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """`image` (1, C, H, W) averaged by a Gaussian of NOISE_BLUR_SIGMA over the pixels `outside` (1, 1, H, W) bool
    alone, at every pixel outside (elsewhere the image as it is)."""
    return torch.where(outside, masked_blur(image, outside.to(image.dtype), NOISE_BLUR_SIGMA), image)


def residual_noise(averaged: torch.Tensor, outside: torch.Tensor, alpha: torch.Tensor) -> float:
    """The noise left in an averaged residual (1, 3, H, W): frame_noise of it (its median colour difference from
    nothing, 0..1) over the pixels `outside` the masks that no layer of `alpha` (L, 1, H, W) holds."""
    held = torch.where(outside, alpha.amax(0, keepdim=True), torch.ones_like(alpha[:1]))
    return frame_noise(colour_difference(averaged, torch.zeros_like(averaged)), held)


def fit_alphas_to_frame(frame: torch.Tensor, background: torch.Tensor, rgb: torch.Tensor,
                        alpha: torch.Tensor, cores: torch.Tensor | None = None,
                        masked: torch.Tensor | None = None, luma_in_masks: bool = False,
                        noise_threshold: float | None = None) -> torch.Tensor:
    """Alphas (L, 1, H, W), back to front, lowered to what the frame (1, 3, H, W) shows of each layer,
    except where a layer's alpha is at least CORE_ALPHA inside its core (`cores`, mask_cores).
    `masked` (1, 1, H, W) bool: where some coarse mask lies (masks_at); with `luma_in_masks` (a clip whose chroma
    is at half resolution) the floor reads the luma alone there. `noise_threshold`: on a frame whose noise sets the
    plate matte's threshold (noise_sets_threshold), that threshold (plate_threshold, 0..1); outside `masked` the
    fit and the floor then read the residual averaged there (average_outside), and where a layer adds less than the
    threshold to the frame its alpha is at most the least alpha of the averaged residual grown by its noise
    (residual_noise).

    Holding the others fixed, the composite is linear in layer i's alpha a:
    C = front + T * (below + a * (F_i - below)), with T what the layers in front let
    through and `below` the background under the (already fitted) layers behind. The
    least-squares a for the frame, weighted against the network's alpha, is the fit; the
    floor is the least a that could reach the frame with any colour in [-1, 1] (least_alpha;
    its luma, least_luma_alpha, inside the masks with luma_in_masks); the layer keeps min(alpha, max(fit, floor)).
    """
    if (luma_in_masks or noise_threshold is not None) and masked is None:
        raise ValueError("the luma floor and the noisy frame's fit need the coarse masks (masked)")
    outside = None if masked is None else ~masked
    fitted = alpha.clone()
    below = background
    for i in range(len(rgb)):
        residual, through = layer_residual(frame, below, rgb, alpha, i)
        judged = residual if noise_threshold is None else average_outside(residual, outside)
        direction = through * (rgb[i:i + 1] - below)
        fit = ((NETWORK_ALPHA_WEIGHT * alpha[i:i + 1] + (judged * direction).sum(1, keepdim=True))
               / (NETWORK_ALPHA_WEIGHT + direction.pow(2).sum(1, keepdim=True))).clamp(0, 1)
        floor = least_alpha(judged, below, through)
        if luma_in_masks:
            floor = torch.where(masked, least_luma_alpha(residual, below, through), floor)
        fitted[i:i + 1] = torch.minimum(alpha[i:i + 1], torch.maximum(fit, floor))
        if noise_threshold is not None:
            grown = judged.sign() * (judged.abs() + 2.0 * residual_noise(judged, outside, alpha))
            adds = (through * alpha[i:i + 1] * (rgb[i:i + 1] - below).abs() * 0.5).amax(1, keepdim=True)
            unseen = outside & (adds < noise_threshold)
            fitted[i:i + 1] = torch.where(unseen, torch.minimum(fitted[i:i + 1], least_alpha(grown, below, through)),
                                          fitted[i:i + 1])
        if cores is not None:
            sure = cores[i:i + 1] & (alpha[i:i + 1] >= CORE_ALPHA)
            fitted[i:i + 1] = torch.where(sure, alpha[i:i + 1], fitted[i:i + 1])
        below = composite_over(below, [rgb[i:i + 1]], [fitted[i:i + 1]])
    return fitted
