"""Compositing and resampling: how layers, canvases and flows combine into a frame."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def composite_over(background: torch.Tensor, layers: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """Back-to-front 'over': each layer (first = nearest the background) covers what lies below by its alpha."""
    result = background
    for value, alpha in zip(layers, alphas):
        result = alpha * value + (1.0 - alpha) * result
    return result


def sample_canvas(canvas: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """View a canvas-space tensor (1 or N, C, Hc, Wc) from frames through grids (N, H, W, 2) in [-1, 1]."""
    if canvas.shape[0] == 1 and grid.shape[0] > 1:
        canvas = canvas.expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(canvas, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_by_flow(tensor: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `tensor` at x + flow(x): brings frame t+1 content to frame t with the flow t->t+1."""
    n, _, height, width = tensor.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    gx = (xs + flow[:, 0] + 0.5) / width * 2 - 1
    gy = (ys + flow[:, 1] + 0.5) / height * 2 - 1
    grid = torch.stack((gx, gy), -1)
    return F.grid_sample(tensor, grid.to(tensor.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def identity_grid(n: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """The grid (N, H, W, 2) that grid_sample maps onto the input unchanged: every pixel's own position."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    grid = torch.stack(((xs + 0.5) / width * 2 - 1, (ys + 0.5) / height * 2 - 1), -1)
    return grid.unsqueeze(0).expand(n, -1, -1, -1)


def colour_difference(frame: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The largest channel difference (0..1) between two (N, 3, H, W) images in [-1, 1], as (N, 1, H, W): how far
    a pixel is from showing just the background (the plate matte and the release of a zero alpha judge by it)."""
    return ((frame - background).abs() * 0.5).amax(1, keepdim=True)
