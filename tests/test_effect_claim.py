"""The effect claim: what the frame shows beyond the background, away from every layer, goes to the nearest object."""

import pytest
import torch
import torch.nn.functional as F

from omnimatte.model import composite_over
from omnimatte.render.effect_claim import UnexplainedBackground, claim_effects

H, W = 64, 96


def textured_background() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(1, 3, H, W, generator=generator) * 1.2 - 0.6)


def square(top: int, left: int, size: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, H, W)
    mask[..., top:top + size, left:left + size] = 1.0
    return mask


def layer_of(mask: torch.Tensor, colour: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((1, 3, H, W), colour), mask.clone()


def test_a_shadow_beside_the_object_goes_to_its_layer_at_its_alpha():
    background = textured_background()
    rgb, alpha = layer_of(square(10, 10, 12))
    shadow = 0.4 * square(24, 8, 10)  # black, 40 % strong, just below the object
    frame = composite_over(background, [torch.full_like(background, -1.0), rgb], [shadow, alpha])
    claimed_rgb, claimed = claim_effects(frame, background, rgb, alpha)
    inside = shadow[0, 0] > 0
    assert claimed[0, 0][inside].mean() > 0.35
    assert (claimed[0, 0][inside] - 0.4).abs().max() < 0.06
    # in the colour that gives the frame back, and the object untouched
    composite = composite_over(background, [claimed_rgb], [claimed])
    assert (composite - frame)[..., inside].abs().max() < 1e-3
    assert torch.equal(claimed[alpha > 0], alpha[alpha > 0])


def test_texture_noise_of_the_background_is_not_claimed():
    background = textured_background()
    rgb, alpha = layer_of(square(10, 10, 12))
    noise = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(1)) * 0.05  # a canvas's pixel errors
    frame = composite_over((background + noise).clamp(-1, 1), [rgb], [alpha])
    _, claimed = claim_effects(frame, background, rgb, alpha)
    assert torch.equal(claimed, alpha)


def stony_ground(shift: int) -> torch.Tensor:
    """Grey ground with small bright stones, moved `shift` px to the left."""
    dots = (torch.rand(1, 1, H + 8, W + 8, generator=torch.Generator().manual_seed(5)) < 0.04).float()
    taps = torch.exp(-0.5 * (torch.arange(-4, 5.0) / 1.2) ** 2)
    stones = F.conv2d(dots, (taps[:, None] * taps[None])[None, None], padding=4).clamp(0, 1)
    return (-0.3 + 0.6 * stones[..., 4:4 + H, 4 + shift:4 + shift + W]).expand(1, 3, H, W).contiguous()


def test_a_canvas_a_pixel_off_is_not_taken_for_effects():
    """A registration error of one pixel over textured ground leaves signed residuals at every stone's edge;
    judged on the smoothed residual they cancel (pixel by pixel, about 1.6 % of the frame would be claimed)."""
    rgb, alpha = layer_of(square(10, 10, 12))
    frame = composite_over(stony_ground(1), [rgb], [alpha])
    _, claimed = claim_effects(frame, stony_ground(0), rgb, alpha)
    assert (claimed - alpha).sum() < 0.01 * H * W


def test_each_region_goes_to_the_nearest_object_and_a_far_change_to_none():
    background = textured_background()
    left, right = square(20, 6, 10), square(20, 60, 10)
    rgb = torch.stack([torch.full((3, H, W), 0.8), torch.full((3, H, W), -0.8)])
    alpha = torch.cat([left, right])
    near_left, near_right = 0.5 * square(32, 4, 8), 0.5 * square(32, 62, 8)
    far = 0.5 * square(2, 88, 6)
    frame = composite_over(background, [torch.full_like(background, -1.0)] * 2 + list(rgb.split(1)),
                           [near_left, near_right] + list(alpha.split(1)))
    _, claimed = claim_effects(frame, background, rgb, alpha)
    assert claimed[0, 0][near_left[0, 0] > 0].min() > 0.4 and claimed[1, 0][near_left[0, 0] > 0].max() == 0
    assert claimed[1, 0][near_right[0, 0] > 0].min() > 0.4 and claimed[0, 0][near_right[0, 0] > 0].max() == 0
    # a change that far from a small object (more than REACH times its size) is no effect of it
    small_rgb, small = layer_of(square(50, 4, 3))
    frame = composite_over(background, [torch.full_like(background, -1.0), small_rgb], [far, small])
    _, claimed = claim_effects(frame, background, small_rgb, small)
    assert torch.equal(claimed, small)


def test_the_nearer_of_two_objects_in_reach_takes_a_region():
    background = textured_background()
    left, right = square(20, 20, 10), square(20, 50, 10)  # both reach 40 px
    rgb = torch.stack([torch.full((3, H, W), 0.8), torch.full((3, H, W), -0.8)])
    alpha = torch.cat([left, right])
    by_left, by_right = 0.5 * square(22, 32, 4), 0.5 * square(22, 44, 4)  # 2 px from one object, 14 from the other
    black = torch.full_like(background, -1.0)
    frame = composite_over(background, [black, black, *rgb.split(1)], [by_left, by_right, *alpha.split(1)])
    _, claimed = claim_effects(frame, background, rgb, alpha)
    assert claimed[0, 0][by_left[0, 0] > 0].min() > 0.4 and claimed[1, 0][by_left[0, 0] > 0].max() == 0
    assert claimed[1, 0][by_right[0, 0] > 0].min() > 0.4 and claimed[0, 0][by_right[0, 0] > 0].max() == 0


def test_reach_is_four_object_sizes():
    background = textured_background()
    rgb, alpha = layer_of(square(30, 10, 4))  # 4 px: reach 16 px
    within, beyond = 0.5 * square(28, 26, 6), 0.5 * square(54, 8, 6)  # 13 and 21 px away
    black = torch.full_like(background, -1.0)
    frame = composite_over(background, [black, black, rgb], [within, beyond, alpha])
    _, claimed = claim_effects(frame, background, rgb, alpha)
    assert claimed[0, 0][within[0, 0] > 0].min() > 0.4
    assert claimed[0, 0][beyond[0, 0] > 0].max() == 0


def test_a_faint_shadow_is_claimed_and_a_fainter_one_or_a_small_error_over_white_is_not():
    background = textured_background()
    rgb, alpha = layer_of(square(10, 40, 12))
    faint, fainter = 0.06 * square(24, 38, 10), 0.025 * square(10, 54, 10)
    black = torch.full_like(background, -1.0)
    frame = composite_over(background, [black, black, rgb], [faint, fainter, alpha])
    _, claimed = claim_effects(frame, background, rgb, alpha)
    assert claimed[0, 0][faint[0, 0] > 0].mean() > 0.045
    assert claimed[0, 0][fainter[0, 0] > 0].max() == 0
    # Over a near-white wall a tiny change needs a large alpha (2.5 levels of 255 need 0.67 of white): not an
    # effect; a real shadow on the same wall is.
    white = torch.full((1, 3, H, W), 0.97)
    error = torch.zeros(1, 3, H, W)
    error[..., 24:34, 38:52] = 0.02
    _, claimed = claim_effects(composite_over(white + error, [rgb], [alpha]), white, rgb, alpha)
    assert torch.equal(claimed, alpha)
    frame = composite_over(white, [black, rgb], [0.3 * square(24, 38, 10), alpha])
    _, claimed = claim_effects(frame, white, rgb, alpha)
    assert claimed[0, 0][square(24, 38, 10)[0, 0] > 0].min() > 0.25


def test_the_claimed_layer_gives_the_frame_back_under_a_faint_layer_in_front():
    background = textured_background()
    shadow = 0.4 * square(24, 8, 10)
    haze = 0.08 * square(24, 8, 10)  # the front layer's faint alpha over the back layer's missed shadow
    rgb = torch.stack([torch.full((3, H, W), 0.8), torch.full((3, H, W), 1.0)])
    alpha = torch.cat([square(10, 10, 12), square(10, 70, 12) + haze])
    frame = composite_over(background, [torch.full_like(background, -1.0), *rgb.split(1)], [shadow, *alpha.split(1)])
    claimed_rgb, claimed = claim_effects(frame, background, rgb, alpha)
    inside = shadow[0, 0] > 0
    assert claimed[0, 0][inside] == pytest.approx(torch.full((int(inside.sum()),), 0.4), abs=1e-4)
    composite = composite_over(background, list(claimed_rgb.split(1)), list(claimed.split(1)))
    assert (composite - frame)[..., inside].abs().max() < 1e-4
    assert bool((claimed >= alpha).all())  # raised, never lowered


def test_nothing_is_claimed_where_a_layer_already_holds_the_pixel_or_no_object_shows():
    background = textured_background()
    rgb, alpha = layer_of(square(10, 10, 12))
    soft = alpha + 0.3 * square(24, 8, 10)  # the layer already holds the shadow region at 0.3 ...
    frame = composite_over(background, [torch.full_like(background, -1.0), rgb], [0.6 * square(24, 8, 10), alpha])
    _, claimed = claim_effects(frame, background, rgb, soft)
    assert torch.equal(claimed, soft)  # ... so it is not free: the alpha fit and the network decide there
    _, claimed = claim_effects(frame, background, rgb, torch.zeros_like(alpha))  # no object in this frame
    assert claimed.max() == 0


def test_nothing_is_claimed_where_the_background_moves_by_itself():
    """Where no frames around can show how it moves, a change beside the object that the background fit finds
    moving by itself (a standing pole sliding by under parallax, water) is given to no layer; the object's own
    shadow beside it still is. A misfit (a registration error, or an effect cast far) goes to the nearest object."""
    background = textured_background()
    rgb, alpha = layer_of(square(10, 10, 12))
    shadow, pole = 0.4 * square(24, 8, 10), 0.5 * square(8, 30, 10)
    black = torch.full_like(background, -1.0)
    frame = composite_over(background, [black, black, rgb], [shadow, pole, alpha])
    _, claimed = claim_effects(frame, background, rgb, alpha)
    assert claimed[0, 0][pole[0, 0] > 0].min() > 0.4  # without the map the nearest object takes the pole too
    mapped = F.max_pool2d(pole, 5, stride=1, padding=2)[0, 0] > 0  # the fit's map, a little wider
    none = torch.zeros_like(mapped)
    # nothing follows the regions here (no motion): what moves by itself is left out, a misfit is kept
    _, claimed = claim_effects(frame, background, rgb, alpha, unexplained=UnexplainedBackground(mapped, none))
    assert claimed[0, 0][mapped].max() == 0
    assert claimed[0, 0][shadow[0, 0] > 0].mean() > 0.35
    _, claimed = claim_effects(frame, background, rgb, alpha, unexplained=UnexplainedBackground(none, mapped))
    assert claimed[0, 0][pole[0, 0] > 0].min() > 0.4
