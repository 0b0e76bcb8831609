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


def sample_canvas(canvas: torch.Tensor, grid: torch.Tensor, footprint: int = 1) -> torch.Tensor:
    """View a canvas-space tensor (1 or N, C, Hc, Wc) from frames through grids (N, H, W, 2) in [-1, 1], each view
    pixel seeing `footprint` x `footprint` canvas pixels (box_sample)."""
    filtered = box_filter(canvas, footprint) if footprint > 1 else canvas  # once, before every frame shares it
    if filtered.shape[0] == 1 and grid.shape[0] > 1:
        filtered = filtered.expand(grid.shape[0], -1, -1, -1)
    return sample_box_filtered(filtered, grid, tuple(canvas.shape[-2:]), footprint)


def box_sample(tensor: torch.Tensor, grid: torch.Tensor, footprint: int = 1) -> torch.Tensor:
    """Sample (N, C, H, W) at grids (N, h, w, 2) in [-1, 1], bilinearly, clamped at the border.

    With a `footprint` of k > 1, each output pixel is the mean of the k x k bilinear samples
    one input pixel apart around its position: a k-pixel box, as an output pixel that covers
    k x k input pixels sees them (the area average that shrinks a frame by k). It is made as
    one bilinear sample of the input box-filtered with stride 1 (box_filter), so it costs
    one sample whatever k.
    """
    filtered = box_filter(tensor, footprint) if footprint > 1 else tensor
    return sample_box_filtered(filtered, grid, tuple(tensor.shape[-2:]), footprint)


def sample_box_filtered(filtered: torch.Tensor, grid: torch.Tensor, size: tuple[int, int],
                        footprint: int) -> torch.Tensor:
    """box_sample of an input of `size` (H, W) whose box-filtered form, `filtered` (box_filter over `footprint`;
    the input itself for a footprint of 1), is given: for an input filtered once and sampled many times."""
    return F.grid_sample(filtered, footprint_grid(grid, size, footprint), mode="bilinear", padding_mode="border",
                         align_corners=False)


def footprint_grid(grid: torch.Tensor, size: tuple[int, int], footprint: int) -> torch.Tensor:
    """`grid` in [-1, 1] over an input of `size` (H, W), moved onto the pixels of that input box-filtered over
    `footprint` x `footprint` pixels (box_filter), which lie between the input's; `grid` itself for a footprint
    of 1."""
    if footprint <= 1:
        return grid
    height, width = size
    if min(height, width) < footprint:
        raise ValueError(f"a {footprint}-pixel footprint needs an input of at least that size, got {width}x{height}")
    # The filtered pixel m lies at input position m + (k - 1) / 2: the same point in the filtered tensor's
    # normalised coordinates, per axis u -> ((u + 1) n - k + 1) / (n - k + 1) - 1 for n input pixels.
    sizes = torch.tensor([width, height], device=grid.device, dtype=grid.dtype)
    return (grid + 1) * (sizes / (sizes - footprint + 1)) - (footprint - 1) / (sizes - footprint + 1) - 1


def box_filter(tensor: torch.Tensor, footprint: int) -> torch.Tensor:
    """The mean over each `footprint` x `footprint` window of (N, C, H, W), stride 1: (N, C, H - k + 1, W - k + 1).

    Made of shifted slices added along each axis in turn: several times faster than avg_pool2d on the CPU,
    forward and backward."""
    height, width = tensor.shape[-2:]
    rows = tensor[..., :, :width - footprint + 1]
    for shift in range(1, footprint):
        rows = rows + tensor[..., :, shift:width - footprint + 1 + shift]
    total = rows[..., :height - footprint + 1, :]
    for shift in range(1, footprint):
        total = total + rows[..., shift:height - footprint + 1 + shift, :]
    return total * (1.0 / footprint**2)


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
