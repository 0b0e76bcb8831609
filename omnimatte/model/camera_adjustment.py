"""The authors' camera adjustment (their `cam_adj`): a learnt per-frame brightness and background offset.

Both are set at key frames every `frames_per_key` frames and interpolated linearly
between them. The brightness multiplies the composite, so a change of exposure does
not have to be painted into the layers; the offset, in canvas pixels, shifts where a
frame samples the background, so small homography errors do not leak into the layers
as edges. The offset is a coarse field, 4x7 over the frame. The brightness is one
scale per key ("frame"), or the authors' 4x7 field ("field"); a field also darkens
where a shadow lies while the layer has not yet taken it, so the background the
effect claim compares against holds part of the shadow. An L1
pull toward no adjustment (brightness 1, offset 0) keeps both small.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FIELD_SIZE = (4, 7)
BRIGHTNESS_KINDS = ("frame", "field")


class CameraAdjustment(nn.Module):
    def __init__(self, *, num_frames: int, brightness: str = "frame", frames_per_key: int = 10) -> None:
        super().__init__()
        if brightness not in BRIGHTNESS_KINDS:
            raise ValueError(f"unknown camera brightness {brightness!r}: choose from {', '.join(BRIGHTNESS_KINDS)}")
        self.frames_per_key = frames_per_key
        keys = math.ceil(max(num_frames - 1, 1) / frames_per_key) + 1
        self.brightness = nn.Parameter(torch.ones(keys, 1, *(FIELD_SIZE if brightness == "field" else (1, 1))))
        self.offset = nn.Parameter(torch.zeros(keys, 2, *FIELD_SIZE))

    def _at_frames(self, keyed: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        position = frames.to(keyed.dtype) / self.frames_per_key
        first = position.floor().long().clamp(0, keyed.shape[0] - 2)  # there are always two keys or more
        weight = (position - first.to(position.dtype)).clamp(0, 1).view(-1, 1, 1, 1)
        return (1 - weight) * keyed[first] + weight * keyed[first + 1]

    def fields(self, frames: torch.Tensor, view_grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Brightness (N,1,H,W) and offset (N,2,H,W) for frame indices `frames`, seen through `view_grid`.

        view_grid (N,H,W,2) says where each output pixel lies in its frame (normalised to
        [-1, 1]); the identity grid for a whole frame, the jitter crop in training.
        """
        brightness = self._at_frames(self.brightness, frames).expand(-1, -1, *FIELD_SIZE)
        coarse = torch.cat((brightness, self._at_frames(self.offset, frames)), 1)
        dense = F.grid_sample(coarse, view_grid.to(coarse.dtype), mode="bilinear", padding_mode="border",
                              align_corners=True)
        return dense[:, :1], dense[:, 1:]

    def regularization(self) -> torch.Tensor:
        """Mean |brightness - 1| + mean |offset|: zero when the camera needs no adjustment."""
        return (self.brightness - 1).abs().mean() + self.offset.abs().mean()
