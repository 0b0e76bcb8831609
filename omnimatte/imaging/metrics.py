"""PSNR, the one score of how closely two 8-bit images agree (evaluate's PSNRs, the export's recomposition)."""

from __future__ import annotations

import numpy as np


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error of 8-bit values; identical images (mse 0) give a large finite value."""
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 image stacks."""
    return psnr_from_mse(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
