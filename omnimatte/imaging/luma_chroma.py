"""Luma and chroma: the parts of a colour that video codecs keep at full and at reduced resolution.

Nearly every codec stores the chroma at half resolution (4:2:0, 4:2:2) and interpolates it
back on decoding, so beside a coloured edge a pixel's chroma holds some of the edge's colour;
only its luma is the pixel's own. Whether a clip's frames are like that is measured from them
(chroma_at_half_resolution): a clip scaled down from a larger source, or made losslessly, has
its chroma at full resolution.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

#: BT.601 luma weights of red, green and blue; the chroma planes are full-range BT.601's.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
RGB_TO_YCBCR = np.array([LUMA, [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)

#: A clip's chroma counts as interpolated from half resolution when its finest octave (finest_octave_share) holds
#: less than this: interpolated back from half resolution it holds at most about a fifth (0.17 for blurred noise
#: halved and interpolated bilinearly, 0.13 to 0.20 on the rendered suite's H.264, noise included, which is halved
#: along with it); chroma with detail of its own at full resolution holds about twice that or more (0.37 to 0.55 on
#: the synthetic presets' lossless frames). Chroma without fine detail at all (a smooth or grey picture) counts as
#: halved, where reading the luma alone loses nothing.
HALF_RESOLUTION_SHARE = 0.3
#: Frames of a clip the measurement reads, spread evenly over it.
MEASURED_FRAMES = 8


def luma(image: torch.Tensor) -> torch.Tensor:
    """The luma (N, 1, H, W) of colours (N, 3, H, W), in the colours' own units."""
    weights = torch.from_numpy(LUMA).to(device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)


def finest_octave_share(plane: np.ndarray) -> float:
    """How much of a plane's (H, W) detail lies at the finest scale: the energy of what halving and restoring its size
    takes away, over the same of the halved plane (1 for detail spread evenly over the octaves, 0 for a plane
    interpolated from half resolution)."""
    height, width = plane.shape[0] // 4 * 4, plane.shape[1] // 4 * 4
    full = plane[:height, :width].astype(np.float32)
    half = cv2.resize(full, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    quarter = cv2.resize(half, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
    finest = full - cv2.resize(half, (width, height), interpolation=cv2.INTER_LINEAR)
    next_octave = half - cv2.resize(quarter, (width // 2, height // 2), interpolation=cv2.INTER_LINEAR)
    return float((finest ** 2).mean() / max(float((next_octave ** 2).mean()), 1e-12))


def chroma_at_half_resolution(frames: np.ndarray) -> bool:
    """Whether frames (T, H, W, 3) RGB show their chroma interpolated from half resolution: over up to MEASURED_FRAMES
    of them, the median of the chroma planes' mean finest_octave_share is under HALF_RESOLUTION_SHARE. Frames too
    small to measure (under 8 px a side) count as full resolution."""
    if min(frames.shape[1:3]) < 8:
        return False
    picked = np.unique(np.linspace(0, len(frames) - 1, min(MEASURED_FRAMES, len(frames))).round().astype(int))
    shares = []
    for frame in frames[picked]:
        planes = frame.astype(np.float32) @ RGB_TO_YCBCR.T
        shares.append((finest_octave_share(planes[..., 1]) + finest_octave_share(planes[..., 2])) / 2)
    return float(np.median(shares)) < HALF_RESOLUTION_SHARE
