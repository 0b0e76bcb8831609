"""PSNR, the one score of how closely two images agree: of 8-bit images (evaluate's PSNRs, the export's
recomposition) and of the model's images in [-1, 1] (the reconstruction the render stage reports)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error of 8-bit values; identical images (mse 0) give a large finite value."""
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 image stacks."""
    return psnr_from_mse(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def tensor_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images (tensors) in [-1, 1], on the [0, 1] scale; identical images give 100 dB."""
    mse = float(((a - b) * 0.5).pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-10))
