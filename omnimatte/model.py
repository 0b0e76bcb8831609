"""The Omnimatte network and layered compositing (Lu et al., CVPR 2021).

One U-Net is shared by all layers. It never sees the RGB frames: a foreground
layer's input is its mask (scaled by the layer's index), the optical flow inside
the mask and a fixed noise latent sampled from the background canvas through the
frame's homography; the background layer's input is the latent alone over the
whole canvas, so the background is one static image that each frame views
through its homography.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LATENT_CHANNELS = 13
INPUT_CHANNELS = 3 + LATENT_CHANNELS  # layer id mask, flow (2), latent


def _norm(channels: int) -> nn.Module:
    # GroupNorm instead of the authors' BatchNorm: the background (one canvas) and the
    # foreground (a batch of frames) pass through the same network in separate calls,
    # and GroupNorm makes each output independent of what else is in the batch, so
    # training and rendering see the same statistics.
    return nn.GroupNorm(min(32, channels // 4), channels)


class _Down(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: bool = True, dilation: int = 1) -> None:
        if dilation == 1:
            conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
        else:
            conv = nn.Conv2d(cin, cout, 4, stride=1, dilation=dilation, padding=3 * dilation // 2)  # "same" for even dilation
        layers: list[nn.Module] = [conv]
        if norm:
            layers.append(_norm(cout))
        layers.append(nn.LeakyReLU(0.2) if norm else nn.ReLU())
        super().__init__(*layers)


class _Up(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), _norm(cout), nn.ReLU())


class OmnimatteUNet(nn.Module):
    """The authors' U-Net: five stride-2 stages, two dilated ones, skip connections.

    Maps (N, in_channels, H, W) to RGBA in [-1, 1] and a 2-channel flow, both at the
    input resolution; inputs whose sides are not multiples of 32 are padded and the
    outputs cropped back.
    """

    def __init__(self, in_channels: int = INPUT_CHANNELS, nf: int = 64) -> None:
        super().__init__()
        self.encoder = nn.ModuleList([
            _Down(in_channels, nf, norm=False),
            _Down(nf, nf * 2),
            _Down(nf * 2, nf * 4),
            _Down(nf * 4, nf * 4),
            _Down(nf * 4, nf * 4),
            _Down(nf * 4, nf * 4, dilation=2),
            _Down(nf * 4, nf * 4, dilation=2),
        ])
        self.decoder = nn.ModuleList([
            _Up(nf * 8, nf * 4),
            _Up(nf * 8, nf * 4),
            _Up(nf * 8, nf * 2),
            _Up(nf * 4, nf),
            _Up(nf * 2, nf),
        ])
        # A 4x4 kernel needs one more pixel of padding on one side to keep the size.
        self.to_rgba = nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(nf, 4, 4), nn.Tanh())
        self.to_flow = nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(nf, 2, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % 32, (-width) % 32
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        if self.encoder[0][0].weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # match the weights' layout (faster on GPUs)
        skips = []
        for index, block in enumerate(self.encoder):
            x = block(x)
            if index < 5:
                skips.append(x)
        for block in self.decoder:
            x = block(torch.cat((x, skips.pop()), 1))
        rgba = self.to_rgba(x)[..., :height, :width]
        flow = self.to_flow(x)[..., :height, :width]
        return rgba, flow


def composite_over(background: torch.Tensor, layers: list[torch.Tensor], alphas: list[torch.Tensor]) -> torch.Tensor:
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


class Omnimatte(nn.Module):
    """Renders the background canvas and the foreground layers and composites them.

    `latent` is the fixed noise texture over the background canvas at 1/latent_scale
    of its resolution (the authors use 1/16); it is a buffer, not a parameter, so it
    never changes.
    """

    def __init__(self, canvas_size: tuple[int, int], nf: int = 64, latent_channels: int = LATENT_CHANNELS,
                 latent_scale: float = 16, seed: int = 0) -> None:
        super().__init__()
        self.canvas_height, self.canvas_width = canvas_size
        self.net = OmnimatteUNet(3 + latent_channels, nf)
        generator = torch.Generator().manual_seed(seed)
        latent_size = (math.ceil(self.canvas_height / latent_scale), math.ceil(self.canvas_width / latent_scale))
        latent = torch.randn(1, latent_channels, *latent_size, generator=generator)
        self.register_buffer("latent", latent)

    def frame_latent(self, grid: torch.Tensor) -> torch.Tensor:
        """The latent as seen by frames whose pixels map to canvas positions `grid`."""
        return sample_canvas(self.latent, grid)

    def render_background(self) -> torch.Tensor:
        """The whole background canvas (1, 3, Hc, Wc) in [-1, 1]; the same for every frame."""
        latent = F.interpolate(self.latent, size=(self.canvas_height, self.canvas_width), mode="bilinear",
                               align_corners=False)
        zeros = latent.new_zeros(1, 3, self.canvas_height, self.canvas_width)
        rgba, _ = self.net(torch.cat((zeros, latent), 1))
        return rgba[:, :3]

    def forward(self, layer_inputs: torch.Tensor, background_grid: torch.Tensor,
                background_flow: torch.Tensor) -> dict[str, torch.Tensor]:
        """Render N frames with L foreground layers.

        layer_inputs: (N, L, 3 + latent_channels, H, W); background_grid: (N, H, W, 2);
        background_flow: (N, 2, H, W), the camera's flow to the next frame.
        Returns rgb (N,3,H,W) and flow composites, the per-layer rgba (N,L,4,H,W) with
        alpha in [0, 1] and rgb in [-1, 1], per-layer flow (N,L,2,H,W) and the background view.
        """
        n, num_layers, channels, height, width = layer_inputs.shape
        background = sample_canvas(self.render_background(), background_grid)
        rgba, flow = self.net(layer_inputs.reshape(n * num_layers, channels, height, width))
        rgba = rgba.reshape(n, num_layers, 4, height, width)
        flow = flow.reshape(n, num_layers, 2, height, width)
        alpha = rgba[:, :, 3:4] * 0.5 + 0.5
        layer_rgb = [rgba[:, i, :3] for i in range(num_layers)]
        layer_alpha = [alpha[:, i] for i in range(num_layers)]
        return {
            "rgb": composite_over(background, layer_rgb, layer_alpha),
            "flow": composite_over(background_flow, [flow[:, i] for i in range(num_layers)], layer_alpha),
            "layer_rgb": rgba[:, :, :3],
            "layer_alpha": alpha,
            "layer_flow": flow,
            "background": background,
        }
