"""The core fill: inside its coarse mask's core an object is as opaque as the frame shows it, never less."""

import torch

from omnimatte.model import composite_over
from omnimatte.render.core_fill import fill_cores
from tests.helpers import box_mask, textured_ground

H, W = 48, 64
THRESHOLD = 0.04


def coloured_ground() -> torch.Tensor:
    return textured_ground(H, W)


def box(top: int, left: int, height: int, width: int) -> torch.Tensor:
    return box_mask(H, W, top, left, height, width)


RED = torch.tensor([0.8, -0.7, -0.6]).view(1, 3, 1, 1)


def sagging_object(ground: torch.Tensor, body: torch.Tensor, sag: float):
    """An opaque red body in the frame, drawn by a layer at alpha `sag` in the colour that still gives the frame."""
    frame = torch.where(body, RED, ground)
    alpha = torch.where(body, sag, 0.0).float()
    rgb = torch.where(body, ground + (frame - ground) / sag, torch.zeros_like(ground))
    return frame, rgb, alpha


def test_a_sagging_alpha_in_the_core_is_raised_to_opaque_in_the_frames_colour():
    ground = coloured_ground()
    body = box(10, 10, 20, 20)
    frame, rgb, alpha = sagging_object(ground, body, 0.6)
    core = box(12, 12, 16, 16)
    filled_rgb, filled = fill_cores(frame, ground, rgb, alpha, core, THRESHOLD)
    inside = core[0, 0]
    assert torch.all(filled[0, 0][inside] == 1.0)
    assert (filled_rgb[0][:, inside] - RED[0, :, 0]).abs().max() < 1e-5
    assert torch.equal(filled[0, 0][~inside], alpha[0, 0][~inside])  # outside the core nothing changes
    composite = composite_over(ground, [filled_rgb], [filled])
    assert (composite - frame).abs().max() < 1e-5


def test_where_the_frame_shows_the_ground_or_a_shadow_through_a_gap_the_core_is_left_alone():
    ground = coloured_ground()
    body = box(10, 10, 20, 20)
    frame, rgb, alpha = sagging_object(ground, body, 0.6)
    gap = box(14, 18, 12, 4)  # between two legs: the ground shows
    shade = box(14, 24, 12, 4)  # under the body: the ground, darkened evenly by 40 %
    frame = torch.where(gap, ground, frame)
    frame = torch.where(shade, ((ground + 1) * 0.5 * 0.6) * 2 - 1, frame)
    alpha = torch.where(gap | shade, 0.3, alpha)
    rgb = torch.where(gap, ground, rgb)
    rgb = torch.where(shade, ground + (frame - ground) / 0.3, rgb)
    _, filled = fill_cores(frame, ground, rgb, alpha, box(12, 12, 16, 16), THRESHOLD)
    assert torch.equal(filled[0, 0][gap[0, 0]], alpha[0, 0][gap[0, 0]])
    assert torch.equal(filled[0, 0][shade[0, 0]], alpha[0, 0][shade[0, 0]])


def test_a_faint_difference_raises_the_alpha_only_in_proportion_and_an_alpha_is_never_lowered():
    ground = coloured_ground()
    core = box(10, 10, 20, 20)
    faint = torch.tensor([0.02, -0.01, 0.0]).view(1, 3, 1, 1)  # a colour difference of 0.01 (0..1 levels)
    frame = torch.where(core, ground + faint, ground)
    alpha = torch.where(core, 0.1, 0.0).float()
    rgb = torch.where(core, ground + faint / 0.1, torch.zeros_like(ground))
    _, filled = fill_cores(frame, ground, rgb, alpha, core, THRESHOLD)
    assert (filled[0, 0][core[0, 0]] - 0.25).abs().max() < 1e-4  # 0.01 / 0.04
    opaque = torch.where(core, 1.0, 0.0).float()
    _, kept = fill_cores(frame, ground, rgb, opaque, core, THRESHOLD)
    assert torch.equal(kept, opaque)


def test_an_object_hidden_by_the_layer_in_front_is_not_filled_through_it():
    ground = coloured_ground()
    body = box(10, 10, 20, 20)
    frame_back, rgb_back, alpha_back = sagging_object(ground, body, 0.6)
    front = box(10, 10, 20, 10)  # an opaque blue object over the left half
    rgb_front = torch.where(front, torch.tensor([-0.8, -0.8, 0.9]).view(1, 3, 1, 1), torch.zeros_like(ground))
    alpha_front = front.float()
    rgb, alpha = torch.cat([rgb_back, rgb_front]), torch.cat([alpha_back, alpha_front])
    frame = composite_over(ground, list(rgb.split(1)), list(alpha.split(1)))
    cores = torch.cat([box(12, 12, 16, 16), torch.zeros_like(front)])
    _, filled = fill_cores(frame, ground, rgb, alpha, cores, THRESHOLD)
    hidden = (front & box(12, 12, 16, 16))[0, 0]
    seen = (~front & box(12, 12, 16, 16))[0, 0]
    assert torch.equal(filled[0, 0][hidden], alpha[0, 0][hidden])
    assert torch.all(filled[0, 0][seen] == 1.0)
    assert torch.equal(filled[1], alpha[1])
