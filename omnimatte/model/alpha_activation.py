"""How the U-Net's alpha channel becomes an alpha: the authors' tanh, or a clamp that lets zero alpha grow back.

With tanh, every term that pulls an alpha toward 0 (the mask term outside the trimap,
the sparsity terms) drives its pre-activation toward minus infinity, where the tanh's
slope is nil; Adam keeps taking full-sized steps on those tiny gradients, so the alpha
far from the coarse mask is soon a saturated zero that the reconstruction can no
longer raise, and effects away from the object (a detached shadow, a reflection)
never enter the layer. `clamp` makes the signed alpha linear below 0 (alpha 0.5), cut
at -1 (alpha 0) with a gradient there only in the direction that leaves it: a zero alpha
stays exactly zero under every pull toward zero, and grows as soon as the frame asks for
it; above 0 it stays tanh, which holds an opaque object at alpha 1.

The frame asks for it everywhere, though: the reconstruction's L1 pushes with the same
strength whatever the size of the residual, so a zero alpha would grow wherever the
background is off by a hair. `release` says where a zero alpha may grow: where the
frame differs from the background by more than the plate matte's threshold (a pixel
that equals the background needs no layer, see render/plate_matte.py).
"""

from __future__ import annotations

import torch

ALPHA_ACTIVATIONS = ("tanh", "clamp")


class _ReleasableFloor(torch.autograd.Function):
    """max(x, -1) whose gradient below -1 passes only where it raises x, and only where `release` allows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, release: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, release)
        return x.clamp(min=-1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, release = ctx.saved_tensors
        # Gradient descent moves x by -grad: below -1 only a negative grad raises it.
        held = (x < -1.0) & ((grad > 0) | ~release)
        return grad.masked_fill(held, 0.0), None


def signed_alpha(x: torch.Tensor, activation: str, release: torch.Tensor | None = None) -> torch.Tensor:
    """The signed alpha in [-1, 1] (alpha = 0.5 * value + 0.5) from the alpha head's output `x`; `release`
    (bool, broadcastable to x; None: everywhere) is where a clamped zero alpha may grow."""
    if activation == "tanh":
        return torch.tanh(x)
    if activation == "clamp":
        if release is None:
            release = torch.ones((), dtype=torch.bool, device=x.device)
        # Linear below alpha 0.5 down to the releasable floor; tanh above, so an opaque object saturates
        # at alpha 1 as with tanh (a clamp there let the sparsity terms fade whole objects to grey).
        return torch.where(x > 0, torch.tanh(x), _ReleasableFloor.apply(x, release.expand_as(x)))
    raise ValueError(f"unknown alpha activation {activation!r}: choose from {', '.join(ALPHA_ACTIVATIONS)}")
