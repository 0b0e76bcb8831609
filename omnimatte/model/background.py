"""The two backgrounds a model can have; both are one static canvas that every frame views through its homography.

`network`: the paper's. The shared U-Net renders the canvas from a fixed noise latent,
so the background starts as noise and must be learnt before the layers can be judged
against it; at the end it is still smoother than the frames.

`canvas`: the default. The canvas is a learnable image at the working
resolution that starts as the registered median of the frames with the objects' coarse
masks left out (and, of each pixel's frames, only those before an object first reached
it). It is sharp from the first step and stays static, so whatever moves must still be
explained by some layer. It may be held as a small pyramid of pixel grids, summed:
coarse levels let a correction reach wide areas quickly, which is also how a lingering,
smooth effect (a dust cloud) gets into the canvas before a layer can take it, so the
default is the one full-resolution grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BACKGROUNDS = ("canvas", "network")


class CanvasBackground(nn.Module):
    """A learnable canvas image (1, 3, Hc, Wc) in [-1, 1]: the sum of `levels` grids, each half the size of the last."""

    def __init__(self, plate: torch.Tensor, *, levels: int = 1) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"the canvas needs at least one level, got {levels}")
        if plate.dim() != 4 or plate.shape[:2] != (1, 3):
            raise ValueError(f"the canvas plate must be (1, 3, H, W), got {tuple(plate.shape)}")
        height, width = plate.shape[-2:]
        grids = [nn.Parameter(plate.detach().clone().float())]
        for level in range(1, levels):
            size = (max(1, math.ceil(height / 2**level)), max(1, math.ceil(width / 2**level)))
            grids.append(nn.Parameter(torch.zeros(1, 3, *size)))
        self.grids = nn.ParameterList(grids)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.grids[0].shape[-2:])

    def forward(self) -> torch.Tensor:
        """The canvas at the resolution it is held at: the first grid plus each coarser one upsampled to it."""
        canvas = self.grids[0]
        for grid in self.grids[1:]:
            canvas = canvas + F.interpolate(grid, size=self.size, mode="bilinear", align_corners=False)
        return canvas
