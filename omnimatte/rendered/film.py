"""From the tracer's linear radiance to what a camera records: each frame's exposure (with a seeded
flicker of a few percent where the scene asks for it), then the sRGB curve, in [0, 1].

Every render of a frame goes through the same gain and curve, so the ground truth (the clean plate, the
object alone, the scene without it) is in the frame's own exposure, and the compositing equation that
the layers obey holds in these display values, as it does for the pipeline's 8-bit frames.
"""

from __future__ import annotations

import numpy as np

from omnimatte.rendered.scene import Scene


def exposure_gains(scene: Scene) -> np.ndarray:
    """Each frame's linear gain: the scene's exposure times 1 + flicker * u, u uniform in [-1, 1] (seeded)."""
    f = scene.filming
    wobble = np.random.default_rng([f.seed, 7]).uniform(-1.0, 1.0, f.n_frames)
    return f.exposure * (1.0 + f.flicker * wobble)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve, clipping at 0 and 1."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def develop(linear: np.ndarray, gain: float) -> np.ndarray:
    """A linear render as the camera records it at `gain`: sRGB float32 in [0, 1]."""
    return linear_to_srgb(linear * gain)


def quantize(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats as 8-bit values, rounded half to even (as the synthetic clips' ground truth)."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
