"""The Omnimatte training losses, each a plain function on tensors.

Weights and schedules live in the training configuration; these functions only
compute the terms, which keeps each one testable with hand-made tensors.
"""

from __future__ import annotations

import torch

from omnimatte.imaging.morphology import square_max
from omnimatte.model.compositing import composite_over, warp_by_flow


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between the composite and the frame."""
    return (prediction - target).abs().mean()


def alpha_coverage(alpha: torch.Tensor) -> torch.Tensor:
    """How much of each pixel the layers (N, L, 1, H, W) cover together: 1 - prod(1 - a_i)."""
    return 1.0 - torch.prod(1.0 - alpha, dim=1)


def self_composited_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """What the authors' sparsity terms see: each layer's alpha channel composited back to front by its own alpha,
    over a background whose alpha is free to be zero (so zero): sum_i a_i^2 prod_{j in front of i} (1 - a_j).

    Unlike the coverage, it is flat at alpha 0 (the pull on a faint alpha a is 2a, not 1), so the L1
    term leaves room for the faint shadows, dust and reflections a layer must take.
    """
    layers = list(alpha.unbind(1))
    return composite_over(torch.zeros_like(layers[0]), layers, layers)


def alpha_regularization(alpha: torch.Tensor, l1_weight: float, l0_weight: float) -> torch.Tensor:
    """Sparsity of the foreground alpha (see alpha_coverage, self_composited_alpha): L1 plus a smooth L0 surrogate.

    The surrogate 2*sigmoid(5a) - 1 is near 1 for any clearly non-zero alpha, so it
    pushes small spurious alphas to exactly zero while sparing confident ones.
    """
    loss = alpha.new_zeros(())
    if l1_weight > 0:
        loss = loss + l1_weight * alpha.mean()
    if l0_weight > 0:
        loss = loss + l0_weight * (2.0 * torch.sigmoid(5.0 * alpha) - 1.0).mean()
    return loss


def trimap(mask: torch.Tensor, band: int) -> torch.Tensor:
    """1 inside the mask, 0 within `band` px outside it (unknown), -1 further out.

    The zero band leaves room for effects next to the object (a shadow at the feet)
    that the coarse mask misses.
    """
    inside = (mask > 0.5).to(mask.dtype)
    if band <= 0:
        return inside * 2 - 1
    grown = square_max(inside, band)
    return inside - (1.0 - grown)


def mask_loss(alpha: torch.Tensor, trimaps: torch.Tensor) -> torch.Tensor:
    """L1 between alpha and the trimap's known parts, inside and outside weighted equally.

    Measured on the network's signed alpha scale (2a - 1, in [-1, 1]) as in the authors'
    code, against +1 inside and -1 outside, so that the paper's weight (50) and its
    switch-off threshold (0.02) mean what they meant there.
    """
    error = (2.0 * alpha - 1.0 - trimaps).abs()
    inside = trimaps.clamp(min=0)
    outside = (-trimaps).clamp(min=0)
    error_inside = (inside * error).sum() / (1.0 + inside.sum())
    error_outside = (outside * error).sum() / (1.0 + outside.sum())
    return 0.5 * (error_inside + error_outside)


def object_floor_loss(alpha: torch.Tensor, trimaps: torch.Tensor, floor: float) -> torch.Tensor:
    """How far each layer's mean alpha inside its coarse mask, frame by frame, falls below `floor`.

    alpha (N, L, 1, H, W), trimaps likewise (1 inside the mask). Nil while every layer
    holds its object, whatever it does at the mask's edge (a segmenter's mask is a few
    px too big) or outside it (the effects); where a layer is losing its object it pushes
    the whole inside back up. Frames where a layer's mask is empty count as nil.
    """
    inside = trimaps.clamp(min=0)
    area = inside.sum(dim=(2, 3, 4))
    mean = (alpha * inside).sum(dim=(2, 3, 4)) / area.clamp(min=1.0)
    shortfall = torch.relu(floor - mean) * (area > 0).to(alpha.dtype)
    return shortfall.mean()


def flow_loss(prediction: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted L1 between the composited flow and the input flow."""
    return (confidence * (prediction - target)).abs().mean()


def alpha_warp_loss(alpha_t: torch.Tensor, alpha_next: torch.Tensor, flow_t: torch.Tensor) -> torch.Tensor:
    """A layer's alpha at t+1, pulled back to t by the layer's own flow, should match its alpha at t.

    alpha_t, alpha_next: (N, L, 1, H, W) in [0, 1]; flow_t: (N, L, 2, H, W), flow t -> t+1.
    The L1 is taken on the signed alpha scale (twice the [0, 1] difference), as the
    authors' code does, so the paper's weight applies unchanged.
    """
    n, num_layers = alpha_t.shape[:2]
    flat = (n * num_layers,) + tuple(alpha_t.shape[2:])
    warped = warp_by_flow(alpha_next.reshape(flat), flow_t.reshape((n * num_layers, 2) + tuple(alpha_t.shape[3:])))
    return 2.0 * (warped - alpha_t.reshape(flat)).abs().mean()
