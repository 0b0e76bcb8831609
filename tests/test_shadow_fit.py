"""The shadow fit: an even darkening outside the coarse masks gets the shadow's own alpha, in black."""

import torch

from omnimatte.model import composite_over
from omnimatte.render.blur import gaussian_blur
from omnimatte.render.overlap_merge import merge_overlaps
from omnimatte.render.shadow_fit import (MAX_TINT, MIN_REGION_PIXELS, darkening, darkening_share, even, fit_shadows,
                                         shadow_tint)
from tests.helpers import box_mask, darkened, textured_ground

H, W = 48, 64


def coloured_ground() -> torch.Tensor:
    return textured_ground(H, W)


def box(top: int, left: int, height: int, width: int) -> torch.Tensor:
    return box_mask(H, W, top, left, height, width)


def drawn_too_opaque(ground: torch.Tensor, frame: torch.Tensor, where: torch.Tensor, alpha_value: float):
    """A layer that explains `frame` exactly at `alpha_value` where `where` holds: a colour lighter than black."""
    alpha = torch.where(where, alpha_value, 0.0).float()
    rgb = torch.where(where, ground + (frame - ground) / alpha_value, torch.zeros_like(ground))
    return rgb, alpha


def test_a_shadow_drawn_too_opaque_gets_its_own_alpha_in_black_and_the_frame_back():
    ground = coloured_ground()
    shade = box(30, 10, 10, 40)
    frame = darkened(ground, 0.4 * shade.float())
    rgb, alpha = drawn_too_opaque(ground, frame, shade, 0.8)
    object_mask = box(5, 10, 20, 20).float()  # the coarse mask of the object, away from the shadow
    fitted_rgb, fitted = fit_shadows(frame, ground, rgb, alpha, object_mask)
    inside = shade[0, 0]
    assert (fitted[0, 0][inside] - 0.4).abs().max() < 1e-3
    assert (fitted_rgb[0][:, inside] + 1.0).abs().max() < 1e-3  # black
    composite = composite_over(ground, [fitted_rgb], [fitted])
    assert (composite - frame).abs().max() < 1e-4
    assert torch.equal(fitted[0, 0][~inside], alpha[0, 0][~inside])


def test_inside_a_coarse_mask_a_dark_grey_object_keeps_its_alpha():
    ground = torch.full((1, 3, H, W), 0.2)  # grey ground: a grey object darkens it evenly
    body = box(10, 20, 20, 16)
    frame = torch.where(body, torch.tensor(-0.5), ground)
    rgb = torch.where(body, torch.tensor(-0.5), torch.zeros_like(ground))
    alpha = body.float()
    coarse_mask = box(8, 18, 24, 20).float()
    fitted_rgb, fitted = fit_shadows(frame, ground, rgb, alpha, coarse_mask)
    assert torch.equal(fitted, alpha) and torch.equal(fitted_rgb, rgb)


def test_an_uneven_darkening_such_as_a_coloured_reflection_is_left_alone():
    ground = coloured_ground()
    where = box(30, 10, 10, 40)
    blue = torch.tensor([-0.9, -0.9, 0.0]).view(1, 3, 1, 1)
    frame = torch.where(where, 0.5 * ground + 0.5 * blue, ground)  # darkens red and green far more than blue
    rgb, alpha = drawn_too_opaque(ground, frame, where, 0.8)
    fitted_rgb, fitted = fit_shadows(frame, ground, rgb, alpha, box(0, 0, 5, 5).float())
    # On ground of levels 0.25..0.85, half-way to blue (0.05, 0.05, 0.5) takes 0.5 - 0.025 / g of the light of red
    # and green (0.40 or more) but 0.5 - 0.25 / g of blue's (0.21 or less): never even, on any pixel.
    assert torch.equal(fitted, alpha) and torch.equal(fitted_rgb, rgb)


SKY_LIT = torch.tensor([0.44, 0.40, 0.32]).view(1, 3, 1, 1)  # a sun's shadow the sky still lights: blue darkens least


def test_a_sky_lit_shadow_is_fitted_once_its_tint_is_measured_and_its_colour_gives_the_frame_back():
    ground = coloured_ground()
    shade = box(30, 10, 10, 40)
    frame = darkened(ground, SKY_LIT * shade.float())  # the shares differ by 31 % of their mean: uneven untinted
    rgb, alpha = drawn_too_opaque(ground, frame, shade, 0.8)
    share = darkening_share(frame - ground, ground, torch.ones(1, 1, H, W))
    tint = shadow_tint(share, darkening(share, ground) & shade)
    assert torch.allclose(tint, SKY_LIT / SKY_LIT.mean(), atol=1e-3)
    fitted_rgb, fitted = fit_shadows(frame, ground, rgb, alpha, box(0, 0, 5, 5).float())
    inside = shade[0, 0]
    assert (fitted[0, 0][inside] - 0.44).abs().max() < 1e-3  # the least alpha: red's share
    assert (fitted_rgb[0, 0][inside] + 1.0).abs().max() < 1e-3  # black in red, the blue the sky leaves in blue
    assert (composite_over(ground, [fitted_rgb], [fitted]) - frame).abs().max() < 1e-4


def test_a_tint_measured_from_too_few_pixels_or_past_max_tint_is_neutral():
    ground = coloured_ground()
    share = darkening_share(darkened(ground, SKY_LIT.expand(1, 3, H, W)) - ground, ground, torch.ones(1, 1, H, W))
    neutral = torch.ones(1, 3, 1, 1)
    assert torch.equal(shadow_tint(share, box(0, 0, 6, 6)), neutral)  # 36 pixels
    coloured = torch.tensor([0.6, 0.4, 0.1]).view(1, 3, 1, 1)  # a reflection's colour, not a shadow's tint
    assert float(coloured.max() - coloured.min()) / float(coloured.mean()) > MAX_TINT
    share = darkening_share(darkened(ground, coloured.expand(1, 3, H, W)) - ground, ground, torch.ones(1, 1, H, W))
    assert torch.equal(shadow_tint(share, box(0, 0, H, W)), neutral)


def test_a_shadow_held_too_faint_is_raised_to_its_own_alpha_and_one_the_layer_barely_holds_is_left_alone():
    ground = coloured_ground()
    shade = box(30, 10, 10, 40)
    frame = darkened(ground, 0.4 * shade.float())
    rgb = torch.full_like(ground, -1.0)
    faint = torch.where(shade, 0.15, 0.0).float()  # more than RAISE_FROM of the shadow's 0.4: the layer's shadow
    fitted_rgb, fitted = fit_shadows(frame, ground, rgb, faint, box(0, 0, 5, 5).float())
    inside = shade[0, 0]
    assert (fitted[0, 0][inside] - 0.4).abs().max() < 1e-3
    assert (composite_over(ground, [fitted_rgb], [fitted]) - frame).abs().max() < 1e-4
    barely = torch.where(shade, 0.05, 0.0).float()  # less than RAISE_FROM of it: not taken as the layer's
    _, kept = fit_shadows(frame, ground, rgb, barely, box(0, 0, 5, 5).float())
    assert torch.equal(kept, barely)


def test_a_shadow_the_overlap_merge_composites_from_two_layers_is_fitted_back_to_its_darkening():
    """Rendering fits shadows after the overlap merge: merged, a faint film of one layer over another's shadow
    raises the shadow's alpha to the union of both, above the darkening; fitted after the merge it is the
    darkening's again, the frame unchanged. Fitted before the merge (where the film still explains part of the
    frame), the merge would leave the union."""
    ground = coloured_ground()
    shade = box(30, 10, 10, 40)
    frame = darkened(ground, 0.4 * shade.float())
    walker, dog = box(5, 5, 15, 10), box(5, 45, 15, 12)
    film = 0.1
    # The walker's layer holds the shadow in black at the alpha that, under the dog's film in the ground's own
    # colour, gives the frame: 0.9 * (1 - x) + 0.1 = 0.6 of the light, x = 4 / 9.
    held = 0.4 / (1.0 - film)
    alpha = torch.cat((torch.where(shade, held, 0.0) + walker.float(), torch.where(shade, film, 0.0) + dog.float()))
    rgb = torch.cat((-torch.ones_like(ground), ground.clone()))
    masks = torch.cat((walker, dog)).float()
    inside = shade[0, 0]
    before = composite_over(ground, list(rgb.split(1)), list(alpha.split(1)))
    assert (before - frame)[0][:, inside].abs().max() < 1e-5

    merged_rgb, merged = merge_overlaps(rgb, alpha, masks)
    assert torch.allclose(merged[0, 0][inside], torch.tensor(1 - (1 - held) * (1 - film)))  # the union, 0.5
    fitted_rgb, fitted = fit_shadows(frame, ground, merged_rgb, merged, masks)
    assert (fitted[0, 0][inside] - 0.4).abs().max() < 1e-3
    assert float(fitted[1, 0][inside].abs().max()) == 0.0
    composite = composite_over(ground, list(fitted_rgb.split(1)), list(fitted.split(1)))
    assert (composite - before).abs().max() < 1e-4

    _, merged_after_fit = merge_overlaps(*fit_shadows(frame, ground, rgb, alpha, masks), masks)
    assert float(merged_after_fit[0, 0][inside].min()) > 0.49


def test_a_shadow_behind_a_layer_in_front_is_fitted_through_it():
    ground = coloured_ground()
    shade = box(30, 10, 10, 40)
    shadow_frame = darkened(ground, 0.4 * shade.float())
    rgb_back, alpha_back = drawn_too_opaque(ground, shadow_frame, shade, 0.8)
    # a faint light veil in front over the whole frame (another layer's soft edge; it brightens, so it stays)
    rgb_front, alpha_front = torch.full_like(ground, 0.9), torch.full((1, 1, H, W), 0.2)
    rgb, alpha = torch.cat([rgb_back, rgb_front]), torch.cat([alpha_back, alpha_front])
    frame = composite_over(ground, list(rgb.split(1)), list(alpha.split(1)))
    masks = torch.cat([box(0, 0, 5, 5), box(0, 50, 5, 5)]).float()
    fitted_rgb, fitted = fit_shadows(frame, ground, rgb, alpha, masks)
    inside = shade[0, 0]
    assert (fitted[0, 0][inside] - 0.4).abs().max() < 1e-3
    assert torch.equal(fitted[1], alpha[1])
    composite = composite_over(ground, list(fitted_rgb.split(1)), list(fitted.split(1)))
    assert (composite - frame).abs().max() < 1e-4


def test_on_a_noisy_frame_a_shadow_judged_blurred_gets_its_alpha_evenly():
    """With noise on every pixel, each pixel judged alone is an uneven darkening or a wrong depth by its own noise:
    the fitted alpha is speckled between the shadow's and what the layer drew. Judged on the residual and ground
    blurred, the shadow's inside gets its own alpha nearly everywhere, and the colour gives the frame back but where
    a pixel's noise darkens it past black at that alpha (or lightens it past white)."""
    generator = torch.Generator().manual_seed(0)
    ground = coloured_ground()
    shade = box(20, 10, 20, 44)
    frame = darkened(ground, 0.3 * shade.float()) + 0.03 * torch.randn(ground.shape, generator=generator)
    rgb, alpha = drawn_too_opaque(ground, frame, shade, 0.8)
    object_mask = box(0, 10, 12, 20).float()
    inside = box(24, 14, 12, 36)[0, 0]  # more than two blur sigmas inside the shadow's edge
    _, pixel_by_pixel = fit_shadows(frame, ground, rgb, alpha, object_mask)
    fitted_rgb, fitted = fit_shadows(frame, ground, rgb, alpha, object_mask, blur_sigma=1.5)
    off = lambda a: ((a[0, 0][inside] - 0.3).abs() > 0.1).float().mean()  # share of the inside fitted wrong
    assert off(pixel_by_pixel) > 0.2
    assert off(fitted) < 0.05
    composite = composite_over(ground, [fitted_rgb], [fitted])
    error = (composite - frame)[..., inside].abs()
    assert (error < 1e-4).float().mean() > 0.5 and error.mean() < 0.4 * 0.03  # the noise: 0.024 on average


def test_on_a_noisy_frame_a_faint_sky_lit_shadow_is_judged_even_over_its_region_and_a_reflection_is_not():
    """A shadow as faint as the noise is strong (a shadow lit by the sky alone): blurred, its channels' shares still
    differ by more than EVENNESS on most of its pixels, but their medians over the region are even, so all of it is
    fitted. A coloured reflection under the same noise (smaller than the shadow, so that the layer's tint is the
    shadow's) stays uneven over its region, and a darkened speck smaller than MIN_REGION_PIXELS is left as the layer
    drew it."""
    generator = torch.Generator().manual_seed(0)
    ground = coloured_ground()
    shade, reflection, speck = box(20, 4, 20, 26), box(24, 42, 10, 12), box(4, 50, 3, 4)
    assert int(speck.sum()) < MIN_REGION_PIXELS
    blue = torch.tensor([-0.9, -0.9, 0.0]).view(1, 3, 1, 1)
    clean = darkened(ground, (0.1 / SKY_LIT.mean()) * SKY_LIT * (shade | speck).float())
    clean = torch.where(reflection, 0.5 * ground + 0.5 * blue, clean)
    frame = clean + 0.1 * torch.randn(ground.shape, generator=generator)
    rgb, alpha = drawn_too_opaque(ground, frame, shade | reflection | speck, 0.8)
    object_mask = box(0, 10, 12, 20).float()
    inside = box(24, 8, 12, 18)[0, 0]  # more than two blur sigmas inside the shadow's edge
    share = darkening_share(gaussian_blur(frame - ground, 1.5), gaussian_blur(ground, 1.5), torch.ones(1, 1, H, W))
    by_pixel = darkening(share, ground) & even(share, SKY_LIT / SKY_LIT.mean())
    assert by_pixel[0, 0][inside].float().mean() < 0.5  # pixel by pixel, most of the shadow is uneven
    _, fitted = fit_shadows(frame, ground, rgb, alpha, object_mask, blur_sigma=1.5)
    assert (fitted[0, 0][inside] - 0.8).abs().min() > 0.5  # every inner pixel fitted ...
    assert (fitted[0, 0][inside] - 0.1 * float(SKY_LIT[0, 0] / SKY_LIT.mean())).abs().mean() < 0.03  # ... near red's
    assert torch.equal(fitted[0, 0][reflection[0, 0]], alpha[0, 0][reflection[0, 0]])
    assert torch.equal(fitted[0, 0][speck[0, 0]], alpha[0, 0][speck[0, 0]])


def test_a_shadows_tint_is_measured_over_faint_specks_that_outnumber_it():
    """A layer holds a sky-lit shadow (200 pixels) and, on a noisy frame, three times as many specks darkened by
    little more than the noise, bluish by chance: the tint is the shadow's, each darkening counting by the light it
    takes, where counted alike the specks would set it."""
    ground = coloured_ground()
    shade = box(30, 10, 10, 20)
    specks = box(0, 0, 10, 60)
    speck_shares = torch.tensor([0.022, 0.025, 0.03]).view(1, 3, 1, 1)
    frame = darkened(ground, SKY_LIT * shade.float() + speck_shares * specks.float())
    share = darkening_share(frame - ground, ground, torch.ones(1, 1, H, W))
    candidates = darkening(share, ground) & (shade | specks)
    assert int(candidates.sum()) == 800
    assert torch.allclose(shadow_tint(share, candidates), SKY_LIT / SKY_LIT.mean(), atol=1e-3)
