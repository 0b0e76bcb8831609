"""The Omnimatte model (Lu et al., CVPR 2021): a background canvas, foreground layers from one U-Net, compositing.

The U-Net never sees the RGB frames: a foreground layer's input is its mask (scaled
by the layer's index), the optical flow inside the mask and a fixed noise latent
sampled from the background canvas through the frame's homography. The background
is one static canvas that each frame views through its homography (see
background.py for the two kinds), optionally shifted and relit per frame by the
camera adjustment.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from omnimatte.model.background import BACKGROUNDS, CanvasBackground
from omnimatte.model.camera_adjustment import CameraAdjustment
from omnimatte.model.compositing import colour_difference, composite_over, sample_canvas
from omnimatte.model.unet import LATENT_CHANNELS, OmnimatteUNet


class Omnimatte(nn.Module):
    """Renders the background and the foreground layers of a batch of frames and composites them.

    Keyword arguments only; the defaults are those of the config's train section. `canvas_size` is the canvas
    at the training scale. `latent` is the fixed noise
    texture over the canvas at 1/latent_scale of its resolution (the authors use 1/16);
    it is a buffer, not a parameter, so it never changes. With background="canvas",
    `plate` (1, 3, H, W) in [-1, 1] is the canvas's starting image at any resolution
    (the working one, so that rendering at the working resolution stays sharp), held as `canvas_levels` grids;
    training views it at that resolution through each training pixel's footprint (`canvas_footprint` held
    pixels a side, a box like the area average that shrinks the frames), so that the canvas learns what the
    frames show at the working resolution, not a version sharpened to undo a second blur.
    With `background_match_threshold` > 0, training (given the frames) takes a frame pixel
    within it of the background relit by the camera adjustment (0..1, the largest channel difference) as showing
    the background: with the clamped alpha a zero alpha grows only where the frame differs
    by more (see alpha_activation.py), and a pixel that shows it teaches the canvas fully
    whatever its `canvas_weight`.
    """

    def __init__(self, *, canvas_size: tuple[int, int], nf: int = 64, latent_channels: int = LATENT_CHANNELS,
                 latent_scale: float = 16, seed: int = 0, norm: str = "group", background: str = "canvas",
                 plate: torch.Tensor | None = None, num_frames: int | None = None,
                 camera_adjustment: bool = True, camera_brightness: str = "frame", alpha_activation: str = "clamp",
                 background_match_threshold: float = 0.04, canvas_levels: int = 1) -> None:
        super().__init__()
        if background not in BACKGROUNDS:
            raise ValueError(f"unknown background {background!r}: choose from {', '.join(BACKGROUNDS)}")
        self.canvas_height, self.canvas_width = canvas_size
        self.net = OmnimatteUNet(in_channels=3 + latent_channels, nf=nf, norm=norm, alpha_activation=alpha_activation)
        self.background_match_threshold = background_match_threshold
        generator = torch.Generator().manual_seed(seed)
        latent_size = (math.ceil(self.canvas_height / latent_scale), math.ceil(self.canvas_width / latent_scale))
        latent = torch.randn(1, latent_channels, *latent_size, generator=generator)
        self.register_buffer("latent", latent)
        self.canvas: CanvasBackground | None = None
        if background == "canvas":
            if plate is None:
                raise ValueError("a canvas background needs its starting plate")
            self.canvas = CanvasBackground(plate, levels=canvas_levels)
        self.canvas_footprint = 1 if self.canvas is None else max(1, round(self.canvas.size[1] / self.canvas_width))
        self.camera: CameraAdjustment | None = None
        if camera_adjustment:
            if num_frames is None:
                raise ValueError("the camera adjustment needs the number of frames")
            self.camera = CameraAdjustment(num_frames=num_frames, brightness=camera_brightness)

    def frame_latent(self, grid: torch.Tensor) -> torch.Tensor:
        """The latent as seen by frames whose pixels map to canvas positions `grid`."""
        return sample_canvas(self.latent, grid)

    def layer_inputs(self, masks: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """The network's input per layer (N, L, 3 + latent_channels, H, W) for frames with coarse masks (N, L, 1, H, W),
        flow (N, 2, H, W) and canvas positions `grid` (N, H, W, 2): the layer's index inside its mask, the flow inside
        the mask, and the latent."""
        n, num_layers = masks.shape[:2]
        layer_ids = torch.arange(1, num_layers + 1, device=masks.device, dtype=masks.dtype).view(1, -1, 1, 1, 1)
        latent = self.frame_latent(grid).unsqueeze(1).expand(-1, num_layers, -1, -1, -1)
        return torch.cat((masks * layer_ids, flow.unsqueeze(1) * masks, latent), 2)

    def render_background(self) -> torch.Tensor:
        """The whole background canvas (1, 3, Hc, Wc) in [-1, 1]; the same for every frame.

        A canvas background at the resolution it is held at; the network's at the training scale (its only size).
        """
        if self.canvas is not None:
            return self.canvas()
        latent = F.interpolate(self.latent, size=(self.canvas_height, self.canvas_width), mode="bilinear",
                               align_corners=False)
        zeros = latent.new_zeros(1, 3, self.canvas_height, self.canvas_width)
        rgba, _ = self.net(torch.cat((zeros, latent), 1))
        return rgba[:, :3]

    def view_background(self, canvas: torch.Tensor, grid: torch.Tensor, offset: torch.Tensor | None,
                        footprint: int = 1) -> torch.Tensor:
        """Each frame's view (N, 3, H, W) of the canvas; `offset` (N, 2, H, W) shifts it by canvas pixels of the
        training scale; each view pixel sees `footprint` x `footprint` canvas pixels (sample_canvas)."""
        if offset is not None:
            step = torch.tensor([2.0 / self.canvas_width, 2.0 / self.canvas_height], device=grid.device,
                                dtype=grid.dtype)
            grid = grid + offset.permute(0, 2, 3, 1).to(grid.dtype) * step
        return sample_canvas(canvas, grid, footprint)

    def forward(self, layer_inputs: torch.Tensor, background_grid: torch.Tensor, background_flow: torch.Tensor,
                frames: torch.Tensor | None = None, view_grid: torch.Tensor | None = None,
                image: torch.Tensor | None = None,
                canvas_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Render N frames with L foreground layers.

        layer_inputs: (N, L, 3 + latent_channels, H, W); background_grid: (N, H, W, 2);
        background_flow: (N, 2, H, W), the camera's flow to the next frame. With the
        camera adjustment, `frames` (N,) are the frame indices and `view_grid` (N, H, W, 2)
        where each pixel lies in its frame (the jitter crop). `image` (N, 3, H, W): the
        frames being fitted (training only), for the release of zero alpha and to tell where a frame shows the
        background. `canvas_weight` (N, 1, H, W): how much each pixel teaches the canvas (the scale of its
        gradient to the canvas; the rendered values and the camera offset's gradient are unchanged), where the
        frame does not show the background.
        Returns rgb (N,3,H,W) and flow composites, the per-layer rgba (N,L,4,H,W) with
        alpha in [0, 1] and rgb in [-1, 1], per-layer flow (N,L,2,H,W) and the background view.
        """
        n, num_layers, channels, height, width = layer_inputs.shape
        brightness = offset = None
        if self.camera is not None:
            brightness, offset = self.camera.fields(frames, view_grid)
        canvas = self.render_background()
        background = self.view_background(canvas, background_grid, offset, self.canvas_footprint)
        matches = None  # where each frame shows the background, to within background_match_threshold
        if image is not None and self.background_match_threshold > 0 and (
                canvas_weight is not None or self.net.alpha_activation == "clamp"):
            # Against the background as the frame shows it, relit by the camera adjustment, as rendering compares.
            shown = background.detach() if brightness is None else relight(background.detach(), brightness.detach())
            matches = colour_difference(image.detach(), shown) <= self.background_match_threshold
        if canvas_weight is not None:
            if matches is not None:  # a frame that shows the background still teaches it, wherever it does
                canvas_weight = canvas_weight.masked_fill(matches, 1.0)
            # Only the canvas's gradient is scaled: the camera offset learns from every pixel alike.
            canvas_only = self.view_background(canvas, background_grid, None if offset is None else offset.detach(),
                                               self.canvas_footprint)
            background = background + (canvas_weight.to(canvas_only.dtype) - 1) * (canvas_only - canvas_only.detach())
        release = None
        if matches is not None and self.net.alpha_activation == "clamp":
            release = (~matches).repeat_interleave(num_layers, 0)
        rgba, flow = self.net(layer_inputs.reshape(n * num_layers, channels, height, width), release)
        rgba = rgba.reshape(n, num_layers, 4, height, width)
        flow = flow.reshape(n, num_layers, 2, height, width)
        layer_colour, signed = rgba.split((3, 1), 2)
        alpha = signed * 0.5 + 0.5
        # unbind, not one index per layer: its backward is one stack, not a zero-filled tensor per layer.
        layer_alpha = alpha.unbind(1)
        rgb = composite_over(background, layer_colour.unbind(1), layer_alpha)
        if brightness is not None:
            rgb = relight(rgb, brightness)
        return {
            "rgb": rgb,
            "flow": composite_over(background_flow, flow.unbind(1), layer_alpha),
            "layer_rgb": layer_colour,
            "layer_alpha": alpha,
            "layer_flow": flow,
            "background": background,
        }


def relight(rgb: torch.Tensor, brightness: torch.Tensor) -> torch.Tensor:
    """Scale colours in [-1, 1] by a brightness field in the [0, 1] scale, as the authors do, clamped to the range."""
    return (brightness * (rgb * 0.5 + 0.5)).clamp(0, 1) * 2 - 1
