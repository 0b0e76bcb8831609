"""The copy cut: a layer keeps no copy of another object beyond its own object's reach."""

import torch

from omnimatte.render.copy_cut import HELD, cut_copies
from tests.helpers import box_mask

H, W = 128, 192  # smoothing sigma 2 px: a layer's own mask is spared 2 px around it
REACH = 2.0


def box(top: int, left: int, height: int, width: int) -> torch.Tensor:
    return box_mask(H, W, top, left, height, width)


def layers(*alphas: torch.Tensor) -> torch.Tensor:
    return torch.cat([alpha.float() for alpha in alphas])


def test_a_faint_copy_of_another_object_far_from_the_layers_own_is_cut_and_nothing_else():
    ball = box(20, 20, 10, 10)  # 10 px across: it reaches 20 px
    walker = box(60, 120, 40, 20)  # 80 px from the ball
    shadow = box(30, 30, 6, 12)  # the ball's shadow, beside it
    alpha = layers(torch.maximum(ball.float(), 0.5 * shadow.float()) + 0.3 * walker.float(), walker)
    masks = layers(ball, walker)
    cut = cut_copies(alpha, masks, REACH)
    assert float(alpha[0, 0][walker[0, 0]].min()) > 0.29
    assert float(cut[0, 0][walker[0, 0]].abs().max()) == 0.0
    assert torch.equal(cut[0][~walker[0]], alpha[0][~walker[0]])  # its object and its shadow as they were
    assert torch.equal(cut[1], alpha[1])  # the walker's own layer untouched


def test_what_an_object_casts_on_another_within_its_reach_stays_and_beyond_it_goes():
    ball = box(40, 20, 10, 10)  # reaches 20 px: to column 49
    wall = box(20, 36, 60, 120)  # another object from column 36 to 155
    alpha = layers(torch.maximum(ball.float(), 0.4 * wall.float()), wall)
    cut = cut_copies(alpha, layers(ball, wall), REACH)
    near = (slice(40, 50), slice(36, 46))  # on the wall, within 16 px of the ball
    far = (slice(20, 80), slice(60, 156))  # on the wall, past 30 px from it
    assert torch.equal(cut[0, 0][near], alpha[0, 0][near])
    assert float(cut[0, 0][far].abs().max()) == 0.0


def test_where_the_other_layer_does_not_hold_its_own_body_the_alpha_stays():
    ball = box(20, 20, 10, 10)
    walker = box(60, 120, 40, 20)
    lost = walker.float() * (HELD - 0.1)  # the walker's layer lost its object: whose alpha it is, is in doubt
    alpha = layers(torch.maximum(ball.float(), 0.3 * walker.float()), lost)
    cut = cut_copies(alpha, layers(ball, walker), REACH)
    assert torch.equal(cut, alpha)


def test_in_a_frame_without_its_object_a_layer_keeps_nothing_on_another_body():
    walker = box(60, 120, 40, 20)
    beside = box(60, 100, 40, 10)  # not on the walker's body: the stray cut's to judge
    alpha = layers(0.3 * walker.float() + 0.2 * beside.float(), walker)
    cut = cut_copies(alpha, layers(torch.zeros_like(walker), walker), REACH)
    assert float(cut[0, 0][walker[0, 0]].abs().max()) == 0.0
    assert torch.equal(cut[0, 0][beside[0, 0]], alpha[0, 0][beside[0, 0]])


def test_a_layer_keeps_its_own_edge_however_short_its_reach_and_coarse_masks_at_half_size_are_read_full():
    walker = box(20, 52, 80, 80)
    ball = box(60, 40, 12, 12)  # at a reach of 0.1 it reaches 1.2 px; its mask touches nothing of the walker's
    edge = box(58, 52, 16, 2)  # the ball's layer 0..2 px past its mask, on the walker's body: its own edge
    far = box(20, 60, 80, 20)
    alpha = layers(ball.float() + 0.6 * edge.float() + 0.3 * far.float(), walker)
    alpha[1, 0][edge[0, 0]] = 1.0
    alpha[1, 0][walker[0, 0]] = 1.0
    half = torch.nn.functional.interpolate(layers(ball, walker), scale_factor=0.5, mode="nearest")
    cut = cut_copies(alpha, half, 0.1)
    assert torch.equal(cut[0, 0][edge[0, 0]], alpha[0, 0][edge[0, 0]])
    assert float(cut[0, 0][far[0, 0]].abs().max()) == 0.0


def test_one_layer_is_returned_as_it_is():
    alpha = layers(0.3 * box(0, 0, H, W).float())
    assert cut_copies(alpha, layers(box(10, 10, 5, 5)), REACH) is alpha
