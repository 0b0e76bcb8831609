"""Co-motion: an effect region that two objects reach goes to the one it moves with, not the nearest."""

import math

import numpy as np
import pytest
import torch

from omnimatte.model import composite_over
from omnimatte.train.effect_claim import claim_effects, region_owners
from omnimatte.train.effect_motion import EffectMotion

H, W, T = 64, 96, 17
SIZE = 10


def textured_background() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, H, W, generator=generator) * 1.2 - 0.6


def box(top: int, left: int, height: int, width: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, H, W)
    mask[..., max(0, top):max(0, top + height), max(0, left):max(0, left + width)] = 1.0
    return mask


def caster(t: int) -> torch.Tensor:
    """Moves right 2 px a frame; its shadow lies below it, 5 px away."""
    return box(10, 10 + 2 * t, SIZE, SIZE)


def bystander(t: int) -> torch.Tensor:
    """Moves left 2 px a frame, passing right under the caster's shadow at frame 8."""
    return box(32, 46 - 2 * t, SIZE, SIZE)


def shadow(t: int) -> torch.Tensor:
    return 0.4 * box(24, 10 + 2 * t, 8, 14)


def scene(t: int, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame t, and its two layers (caster, bystander) without the shadow."""
    rgb = torch.cat([torch.full((1, 3, H, W), 0.8), torch.full((1, 3, H, W), -0.2)])
    alpha = torch.cat([caster(t), bystander(t)])
    frame = composite_over(background, [torch.full_like(background, -1.0), rgb[:1], rgb[1:]],
                           [shadow(t), alpha[:1], alpha[1:]])
    return frame, rgb, alpha


def dilated(mask: torch.Tensor, px: int = 2) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(mask, 2 * px + 1, stride=1, padding=px)


def motion(background: torch.Tensor) -> EffectMotion:
    frames = torch.cat([scene(t, background)[0] for t in range(T)])
    masks = torch.stack([torch.cat([dilated(caster(t)), dilated(bystander(t))]) for t in range(T)])
    return EffectMotion(frames, masks, lambda s: background)


def test_a_region_scores_high_with_the_object_it_moves_with_and_low_with_another():
    background = textured_background()
    follow = motion(background)
    region = (shadow(8)[0, 0] > 0).numpy()
    assert follow.score(8, region, 0) > 0.9
    assert follow.score(8, region, 1) < 0.3


def test_the_shadow_goes_to_its_caster_though_the_bystander_touches_it():
    background = textured_background()
    frame, rgb, alpha = scene(8, background)
    inside = shadow(8)[0, 0] > 0
    _, nearest = claim_effects(frame, background, rgb, alpha)
    assert nearest[1, 0][inside].mean() > 0.3  # nearness alone gives it to the bystander
    _, claimed = claim_effects(frame, background, rgb, alpha, motion(background).scorer(8))
    assert (claimed[0, 0][inside] - 0.4).abs().max() < 0.06
    assert torch.equal(claimed[1], alpha[1])


def test_a_region_only_one_object_reaches_is_not_followed():
    labels = np.zeros((H, W), np.int32)
    labels[24:32, 26:40] = 1
    alpha = torch.cat([caster(8), box(0, 0, 0, 0)])

    def never(region, layer):
        raise AssertionError("followed a region with one candidate")

    assert list(region_owners(labels, alpha, never)) == [-1, 0]


@pytest.mark.parametrize("scores, owner", [({0: 0.9, 1: 0.87}, 1),  # a near tie keeps the nearest
                                           ({0: math.nan, 1: math.nan}, 1),  # nothing known keeps the nearest
                                           ({0: 0.9, 1: math.nan}, 0)])
def test_the_nearest_keeps_a_region_unless_another_moves_with_it_clearly_better(scores, owner):
    labels = np.zeros((H, W), np.int32)
    labels[24:32, 26:40] = 1
    alpha = torch.cat([caster(8), bystander(8)])
    assert region_owners(labels, alpha, lambda region, layer: scores[layer])[1] == owner


def test_frames_where_an_object_is_gone_or_the_region_leaves_the_picture_do_not_count():
    background = textured_background()
    follow = motion(background)
    follow.centres[:, 0] = np.nan
    assert math.isnan(follow.score(8, (shadow(8)[0, 0] > 0).numpy(), 0))
    follow = motion(background)
    follow.centres[:, 1, 1] += 1000.0 * (np.arange(T) != 8)  # every other frame moves it off the picture
    assert math.isnan(follow.score(8, (shadow(8)[0, 0] > 0).numpy(), 1))
