"""How the U-Net's alpha channel becomes an alpha: the authors' tanh, or a clamp that lets zero alpha grow back.

With tanh, every term that pulls an alpha toward 0 (the mask term outside the trimap,
the sparsity terms) drives its pre-activation toward minus infinity, where the tanh's
slope is nil; Adam keeps taking full-sized steps on those tiny gradients, so the alpha
far from the coarse mask is soon a saturated zero that the reconstruction can no
longer raise, and effects away from the object (a detached shadow, a reflection)
never enter the layer. `clamp` cuts the signed alpha to [-1, 1] instead and passes a
gradient at the bounds only in the direction that leaves them: a zero alpha stays
exactly zero under every pull toward zero, and grows as soon as the frame asks for it.

The frame asks for it everywhere, though: the reconstruction's L1 pushes with the same
strength whatever the size of the residual, so a zero alpha would grow wherever the
background is off by a hair. `release` says where a zero alpha may grow: where the
frame differs from the background by more than the plate matte's threshold (a pixel
that equals the background needs no layer, see train/render.plate_matte).
"""

from __future__ import annotations

import torch

ALPHA_ACTIVATIONS = ("tanh", "clamp")


class _ClampReleasable(torch.autograd.Function):
    """clamp(x, -1, 1) whose gradient at a bound passes only where it moves x back inside (at the lower bound,
    only where `release` allows)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, release: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, release)
        return x.clamp(-1.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, release = ctx.saved_tensors
        # Gradient descent moves x by -grad: below -1 only a negative grad raises it, above 1 only a positive one.
        held = ((x < -1.0) & ((grad > 0) | ~release)) | ((x > 1.0) & (grad < 0))
        return grad.masked_fill(held, 0.0), None


def signed_alpha(x: torch.Tensor, activation: str, release: torch.Tensor | None = None) -> torch.Tensor:
    """The signed alpha in [-1, 1] (alpha = 0.5 * value + 0.5) from the alpha head's output `x`; `release`
    (bool, broadcastable to x; None: everywhere) is where a clamped zero alpha may grow."""
    if activation == "tanh":
        return torch.tanh(x)
    if activation == "clamp":
        if release is None:
            release = torch.ones((), dtype=torch.bool, device=x.device)
        return _ClampReleasable.apply(x, release.expand_as(x))
    raise ValueError(f"unknown alpha activation {activation!r}: choose from {', '.join(ALPHA_ACTIVATIONS)}")
