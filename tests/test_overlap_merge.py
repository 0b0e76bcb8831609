"""The overlap merge: outside the masks, alpha that one layer dominates, or that moves with one holder's object
clearly better than with the others', is held by that layer alone."""

import torch

from omnimatte.model import composite_over
from omnimatte.render.overlap_merge import merge_overlaps
from tests.helpers import box_mask, textured_ground

H, W = 96, 160  # smoothing sigma 1.5 px


def box(top: int, left: int, height: int, width: int) -> torch.Tensor:
    return box_mask(H, W, top, left, height, width)


def layers(*alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Black layers (a shadow each) with these alphas (1, 1, H, W), back to front."""
    alpha = torch.cat(alphas)
    return -torch.ones(len(alpha), 3, H, W), alpha


def test_a_shadow_one_layer_dominates_goes_whole_to_it_and_the_composite_is_unchanged():
    ground = textured_ground(H, W)
    walker, dog = box(10, 20, 40, 14), box(20, 90, 30, 30)
    shadow = box(60, 30, 12, 40)  # the walker's shadow, most of it in the walker's layer
    rgb, alpha = layers(0.6 * shadow.float() + walker.float(), 0.1 * shadow.float() + dog.float())
    rgb[1, :, 30:40, 95:110] = 0.3  # the dog's own colour inside its mask
    masks = torch.cat((walker, dog)).float()
    new_rgb, new_alpha = merge_overlaps(rgb, alpha, masks)
    inside = shadow[0, 0]
    assert torch.allclose(new_alpha[0, 0][inside], torch.tensor(1 - 0.4 * 0.9))  # both darkenings, in one layer
    assert float(new_alpha[1, 0][inside].abs().max()) == 0.0
    assert torch.equal(new_alpha[:, :, walker[0, 0]], alpha[:, :, walker[0, 0]])  # the objects as they were
    assert torch.equal(new_alpha[:, :, dog[0, 0]], alpha[:, :, dog[0, 0]])
    assert torch.equal(new_rgb[1][:, dog[0, 0]], rgb[1][:, dog[0, 0]])
    before = composite_over(ground, list(rgb.split(1)), list(alpha.split(1)))
    after = composite_over(ground, list(new_rgb.split(1)), list(new_alpha.split(1)))
    assert torch.allclose(before, after, atol=1e-5)


def test_coloured_layers_merged_in_front_of_each_other_give_the_same_composite():
    ground = textured_ground(H, W)
    glow = box(40, 40, 30, 60)
    alpha = torch.cat((0.5 * glow.float(), 0.05 * glow.float()))
    rgb = torch.stack((torch.tensor([0.8, -0.2, 0.1]), torch.tensor([-0.5, 0.6, 0.9]))).view(2, 3, 1, 1).expand(2, 3, H, W)
    new_rgb, new_alpha = merge_overlaps(rgb, alpha, torch.zeros(2, 1, H, W))
    assert float(new_alpha[1, 0][glow[0, 0]].abs().max()) == 0.0
    before = composite_over(ground, list(rgb.split(1)), list(alpha.split(1)))
    after = composite_over(ground, list(new_rgb.split(1)), list(new_alpha.split(1)))
    assert torch.allclose(before, after, atol=1e-5)


def test_a_shadow_two_layers_hold_alike_stays_split():
    shadow = box(60, 30, 12, 40)
    rgb, alpha = layers(0.3 * shadow.float(), 0.2 * shadow.float())  # neither holds three times the other's
    new_rgb, new_alpha = merge_overlaps(rgb, alpha, torch.zeros(2, 1, H, W))
    assert torch.equal(new_alpha, alpha) and torch.equal(new_rgb, rgb)


def test_nothing_moves_inside_a_mask_or_with_one_layer():
    ball, walker = box(30, 30, 30, 30), box(10, 80, 60, 20)
    in_front = box(40, 40, 10, 10)  # the walker's layer over the ball's mask: an occlusion, not a shared effect
    rgb, alpha = layers(ball.float(), 0.1 * in_front.float() + walker.float())
    masks = torch.cat((ball, walker)).float()
    new_rgb, new_alpha = merge_overlaps(rgb, alpha, masks)
    assert torch.equal(new_alpha, alpha) and torch.equal(new_rgb, rgb)
    alone_rgb, alone_alpha = merge_overlaps(rgb[:1], alpha[:1] * 0.5, torch.zeros(1, 1, H, W))
    assert torch.equal(alone_alpha, alpha[:1] * 0.5) and torch.equal(alone_rgb, rgb[:1])


def followed(shares: dict[int, float]):
    """A stand-in for a frame's effect motion: moving a region with layer i lands shares[i] of it on the effects of
    four frames around (a layer missing from `shares` could not be followed)."""
    return lambda region, layer: {s: shares[layer] for s in (-8, -4, 4, 8)} if layer in shares else {}


def test_a_shadow_two_layers_hold_alike_goes_to_the_one_it_moves_with():
    ground = textured_ground(H, W)
    shadow = box(60, 30, 12, 40)
    rgb, alpha = layers(0.3 * shadow.float(), 0.2 * shadow.float())
    masks = torch.zeros(2, 1, H, W)
    new_rgb, new_alpha = merge_overlaps(rgb, alpha, masks, followed({0: 0.4, 1: 0.9}))
    inside = shadow[0, 0]
    assert float(new_alpha[0, 0][inside].abs().max()) == 0.0
    assert torch.allclose(new_alpha[1, 0][inside], torch.tensor(1 - 0.7 * 0.8))  # both darkenings, in one layer
    before = composite_over(ground, list(rgb.split(1)), list(alpha.split(1)))
    after = composite_over(ground, list(new_rgb.split(1)), list(new_alpha.split(1)))
    assert torch.allclose(before, after, atol=1e-5)
    # A holder it could not be followed with counts as half the region landing: 0.52 does not beat it by the margin.
    _, unsure = merge_overlaps(rgb, alpha, masks, followed({1: 0.52}))
    assert torch.equal(unsure, alpha)
    _, sure = merge_overlaps(rgb, alpha, masks, followed({1: 0.9}))
    assert float(sure[0, 0][inside].abs().max()) == 0.0


def test_a_shadow_that_moves_with_both_alike_stays_split():
    shadow = box(60, 30, 12, 40)
    rgb, alpha = layers(0.3 * shadow.float(), 0.2 * shadow.float())
    for shares in ({0: 0.8, 1: 0.78}, {}):  # objects that move alike; a region followed with neither
        new_rgb, new_alpha = merge_overlaps(rgb, alpha, torch.zeros(2, 1, H, W), followed(shares))
        assert torch.equal(new_alpha, alpha) and torch.equal(new_rgb, rgb)


def test_motion_settles_nothing_inside_a_mask_nor_alpha_too_faint_to_contest():
    shadow = box(60, 30, 12, 40)
    rgb, alpha = layers(0.3 * shadow.float(), 0.2 * shadow.float())
    masks = torch.cat((shadow, torch.zeros_like(shadow))).float()  # the shared alpha lies in the first mask
    new_rgb, new_alpha = merge_overlaps(rgb, alpha, masks, followed({0: 0.1, 1: 0.9}))
    assert torch.equal(new_alpha, alpha) and torch.equal(new_rgb, rgb)
    faint_rgb, faint = layers(0.015 * shadow.float(), 0.01 * shadow.float())  # under CONTESTED_ALPHA
    new_rgb, new_alpha = merge_overlaps(faint_rgb, faint, torch.zeros(2, 1, H, W), followed({0: 0.1, 1: 0.9}))
    assert torch.equal(new_alpha, faint) and torch.equal(new_rgb, faint_rgb)


def test_the_holder_it_moves_with_must_beat_every_other_holder():
    shadow = box(60, 30, 12, 40)
    rgb, alpha = layers(0.3 * shadow.float(), 0.2 * shadow.float(), 0.25 * shadow.float())
    masks = torch.zeros(3, 1, H, W)
    _, close = merge_overlaps(rgb, alpha, masks, followed({0: 0.2, 1: 0.9, 2: 0.88}))  # the third holder is as good
    assert torch.equal(close, alpha)
    _, settled = merge_overlaps(rgb, alpha, masks, followed({0: 0.2, 1: 0.9, 2: 0.5}))
    inside = shadow[0, 0]
    assert float(settled[0, 0][inside].abs().max()) == 0.0 and float(settled[2, 0][inside].abs().max()) == 0.0
    assert torch.allclose(settled[1, 0][inside], torch.tensor(1 - 0.7 * 0.8 * 0.75))
