"""Training batches: frame pairs (t, t+1) drawn on the device, each pair zoomed and cropped alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from omnimatte.model import Omnimatte
from omnimatte.model.compositing import box_sample, sample_box_filtered
from omnimatte.train.settings import TrainConfig
from omnimatte.train.video import VideoTensors


def jitter_grids(n: int, height: int, width: int, rate: float, max_scale: float,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random zoom-in crops, as the authors' augmentation: a sampling grid (N, H, W, 2) and each crop's scale.

    Everything is drawn and built on the generator's device, so a training step on the
    GPU never waits for the host.
    """
    device, dtype = generator.device, torch.float32
    zoom = 1 + (max_scale - 1) * torch.rand(n, generator=generator, device=device, dtype=dtype)
    scale = torch.where(torch.rand(n, generator=generator, device=device, dtype=dtype) < rate, zoom,
                        torch.ones_like(zoom))
    # Output pixel p shows source position (p + offset) / scale; the offset keeps the crop inside the frame.
    offset_x = torch.rand(n, generator=generator, device=device, dtype=dtype) * (scale - 1) * width
    offset_y = torch.rand(n, generator=generator, device=device, dtype=dtype) * (scale - 1) * height
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    src_x = (xs[None] + 0.5 + offset_x[:, None, None]) / scale[:, None, None]
    src_y = (ys[None] + 0.5 + offset_y[:, None, None]) / scale[:, None, None]
    return torch.stack((src_x / width * 2 - 1, src_y / height * 2 - 1), -1), scale


def canvas_weight(video: VideoTensors, frames: torch.Tensor, background_grid: torch.Tensor,
                  config: TrainConfig) -> torch.Tensor | None:
    """How much each pixel of frames `frames` teaches the canvas (N, 1, H, W): 1 before an object first reaches
    its canvas pixel, train.canvas_weight_once_reached from then on; None where every pixel teaches fully."""
    if video.canvas_first_reached is None or config.canvas_weight_once_reached >= 1.0:
        return None
    # Looked up where the frame sees the canvas before the camera offset (a fraction of a pixel; the map's
    # objects are grown by half the trimap band).
    reached = F.grid_sample(video.canvas_first_reached.expand(len(frames), -1, -1, -1), background_grid,
                            mode="nearest", padding_mode="border", align_corners=False)
    before = frames.view(-1, 1, 1, 1).to(reached.dtype) < reached
    return torch.full_like(reached, config.canvas_weight_once_reached).masked_fill(before, 1.0)


class Batch:
    """One training batch: frames t (first half) and t+1 (second half), all jittered alike per pair."""

    def __init__(self, *, video: VideoTensors, model: Omnimatte, indices: torch.Tensor, config: TrainConfig,
                 generator: torch.Generator) -> None:
        pairs = len(indices)
        frames = torch.cat((indices, indices + 1))
        height, width = video.frames.shape[-2:]
        grid, scale = jitter_grids(pairs, height, width, config.jitter_rate, config.jitter_max_scale, generator)
        grid, scale = torch.cat((grid, grid)), torch.cat((scale, scale)).view(-1, 1, 1, 1)

        def sample(t: torch.Tensor) -> torch.Tensor:
            return box_sample(t[frames], grid)

        # The frames themselves from the working resolution, each training pixel seeing its footprint there (as
        # the model views its canvas): a zoomed crop is as sharp as its pixels, not the shrunk frame blurred again.
        self.image = sample_box_filtered(video.footprint_frames[frames], grid, tuple(video.output_frames.shape[-2:]),
                                         video.footprint)
        self.masks = box_sample(video.masks[frames].flatten(1, 2), grid).unsqueeze(2)
        self.trimaps = box_sample(video.trimaps[frames].flatten(1, 2), grid).unsqueeze(2)
        self.flow = sample(video.flow) * scale
        self.confidence = sample(video.confidence)
        # The flow term only judges flow where some object is, as the authors do.
        self.confidence = self.confidence * (self.masks.sum(1) > 0).to(self.confidence.dtype)
        self.background_flow = sample(video.background_flow) * scale
        background_grid = box_sample(video.background_grid[frames].permute(0, 3, 1, 2), grid).permute(0, 2, 3, 1)
        self.background_grid = background_grid.contiguous()
        self.inputs = model.layer_inputs(self.masks, self.flow, self.background_grid)
        self.pairs = pairs
        self.frame_indices = frames
        self.view_grid = grid  # where each pixel lies in its frame, for the camera adjustment's fields
        self.canvas_weight = (canvas_weight(video, frames, self.background_grid, config)
                              if model.canvas is not None else None)
