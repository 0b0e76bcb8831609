"""The plate matte: alpha cut where the frame shows the background, judged against the frame's noise."""

import pytest
import torch

from omnimatte.model import colour_difference
from omnimatte.render.plate_matte import noise_sets_threshold, plate_matte, plate_threshold


def test_plate_matte_clears_alpha_where_the_frame_shows_the_background():
    background = torch.zeros(1, 3, 4, 4)
    frame = background.clone()
    frame[..., 0, :] = 0.2  # a strong change: 0.1 on the 0..1 scale
    frame[..., 1, :] = 0.04  # a faint one: 0.02
    alpha = torch.ones(1, 1, 4, 4)
    alpha[..., 3, :] = 0.0  # nothing here: the noise estimate looks at these pixels
    noisy = noise_sets_threshold(colour_difference(frame, background), alpha, 0.04)
    keep = plate_matte(frame, background, alpha, 0.04, noisy)
    assert keep[0, 0, :, 0].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])


def noisy_scene(noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 64x64 frame: an object (a bright square, 24..40) over a textured background, Gaussian `noise` (in [-1, 1]
    units) on every pixel; the network's alpha opaque on the object, 0.5 in an 8 px halo around it over the
    background (16..48), 0 beyond. Returns frame, background and alpha."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    background = (0.3 * torch.sin(xs / 5) * torch.cos(ys / 7)).expand(1, 3, 64, 64).clone()
    frame = background.clone()
    frame[..., 24:40, 24:40] = 0.9
    frame = frame + noise * torch.randn(frame.shape, generator=generator)
    alpha = torch.zeros(1, 1, 64, 64)
    alpha[..., 16:48, 16:48] = 0.5
    alpha[..., 24:40, 24:40] = 1.0
    return frame, background, alpha


def test_on_noisy_footage_a_halo_over_the_background_is_cut_and_the_object_kept():
    """Judged pixel by pixel against three times the noise, a halo over the background keeps about a third of its
    alpha (each pixel's own noise against the threshold); judged on the blurred frame and background, where the
    noise falls under the setting's threshold, the halo more than two blur sigmas from the object keeps well under
    half of that. Nearer, the object's blurred edge keeps part of it."""
    frame, background, alpha = noisy_scene(noise=0.04)
    difference = colour_difference(frame, background)
    keep = plate_matte(frame, background, alpha, 0.04, noise_sets_threshold(difference, alpha, 0.04))
    pixel_by_pixel = (difference / plate_threshold(difference, alpha, 0.04)).clamp(0, 1)
    far = alpha == 0.5
    far[..., 21:43, 21:43] = False
    assert pixel_by_pixel[far].mean() > 0.3
    assert keep[far].mean() < 0.4 * pixel_by_pixel[far].mean()
    assert keep[..., 24:40, 24:40].min() == 1.0


def test_noiseless_frames_are_judged_pixel_by_pixel():
    """Without noise the difference is exact: a one-pixel line keeps its alpha and its neighbours lose theirs."""
    frame, background, alpha = noisy_scene(noise=0.0)
    frame[..., 10, :] = background[..., 10, :] + 0.2
    alpha[..., 8:13, :] = 1.0
    noisy = noise_sets_threshold(colour_difference(frame, background), alpha, 0.04)
    keep = plate_matte(frame, background, alpha, 0.04, noisy)
    assert keep[..., 10, :].min() == 1.0
    assert keep[..., 9, :].max() == 0.0 and keep[..., 11, :].max() == 0.0
