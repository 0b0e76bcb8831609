"""Co-motion: an effect region that two objects reach goes to the one it moves with, not the nearest."""

import warnings

import numpy as np
import pytest
import torch

from omnimatte.model import composite_over
from omnimatte.render.effect_claim import UnexplainedBackground, claim_effects, is_no_effect, region_owners
from omnimatte.render.effect_motion import OFFSETS, EffectMotion

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


def pole() -> torch.Tensor:
    """A standing thing the background does not hold (as under parallax): a darkening that stays where it is."""
    return 0.5 * box(46, 20, 10, 8)


def scene(t: int, background: torch.Tensor, with_pole: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame t, and its two layers (caster, bystander) without the shadow (or the pole)."""
    rgb = torch.cat([torch.full((1, 3, H, W), 0.8), torch.full((1, 3, H, W), -0.2)])
    alpha = torch.cat([caster(t), bystander(t)])
    below = [pole()] if with_pole else []
    frame = composite_over(background, [torch.full_like(background, -1.0)] * (len(below) + 1) + [rgb[:1], rgb[1:]],
                           below + [shadow(t), alpha[:1], alpha[1:]])
    return frame, rgb, alpha


def dilated(mask: torch.Tensor, px: int = 2) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(mask, 2 * px + 1, stride=1, padding=px)


def motion(background: torch.Tensor, mask_scale: int = 1, frames: int = T, with_pole: bool = False) -> EffectMotion:
    """The clip's EffectMotion, its coarse masks (dilated 2 px) area-shrunk by `mask_scale` as training's are."""
    clip = torch.cat([scene(t, background, with_pole)[0] for t in range(frames)])
    masks = torch.stack([torch.cat([dilated(caster(t)), dilated(bystander(t))]) for t in range(frames)])
    if mask_scale > 1:
        masks = torch.nn.functional.avg_pool2d(masks.flatten(0, 1), mask_scale).view(frames, 2, 1, H // mask_scale, -1)
    return EffectMotion(clip, masks, lambda s: background)


def mean_share(shares: dict[int, float]) -> float:
    return float(np.mean(list(shares.values())))


@pytest.mark.parametrize("mask_scale", [1, 2])  # masks at the working resolution, and at half (scale 0.5)
def test_a_region_scores_high_with_the_object_it_moves_with_and_low_with_another(mask_scale):
    follow = motion(textured_background(), mask_scale)
    region = (shadow(8)[0, 0] > 0).numpy()
    caster_shares, bystander_shares = follow.score(8, region, 0), follow.score(8, region, 1)
    assert sorted(caster_shares) == [0, 4, 12, 16] and sorted(bystander_shares) == [0, 4, 12, 16]
    assert mean_share(caster_shares) > 0.9
    assert mean_share(bystander_shares) < 0.3
    # the centres in working-resolution pixels, whatever the masks' resolution
    assert np.abs(follow.centres - motion(textured_background()).centres).max() < 0.6


def test_the_shadow_goes_to_its_caster_though_the_bystander_touches_it():
    background = textured_background()
    frame, rgb, alpha = scene(8, background)
    inside = shadow(8)[0, 0] > 0
    _, nearest = claim_effects(frame, background, rgb, alpha)
    assert nearest[1, 0][inside].mean() > 0.3  # nearness alone gives it to the bystander
    _, claimed = claim_effects(frame, background, rgb, alpha, motion(background).scorer(8))
    assert (claimed[0, 0][inside] - 0.4).abs().max() < 0.06
    assert torch.equal(claimed[1], alpha[1])


def test_a_region_moving_with_its_object_is_claimed_and_one_staying_put_on_the_background_is_not():
    background = textured_background()
    frame, rgb, alpha = scene(8, background, with_pole=True)
    shadow_region, pole_region = shadow(8)[0, 0] > 0, pole()[0, 0] > 0
    follow = motion(background, with_pole=True)
    assert mean_share(follow.stays(8, shadow_region.numpy())) < 0.3  # the shadow leaves where it was
    assert mean_share(follow.stays(8, pole_region.numpy())) > 0.9  # the pole stays
    _, nearest = claim_effects(frame, background, rgb, alpha)
    assert nearest[1, 0][pole_region].min() > 0.4  # nearness alone gives the pole to the bystander
    mapped, none = shadow_region | pole_region, torch.zeros_like(shadow_region)
    # whether or not the background fit finds both moving by itself, or fitting nothing, the same
    for unexplained in (None, UnexplainedBackground(mapped, none), UnexplainedBackground(none, mapped)):
        _, claimed = claim_effects(frame, background, rgb, alpha, follow.scorer(8), unexplained)
        assert (claimed[0, 0][shadow_region] - 0.4).abs().max() < 0.06
        assert claimed[:, 0][:, pole_region].max() == 0
    # nothing followed: what the fit finds moving by itself is left out, a misfit goes to the nearest
    _, blind = claim_effects(frame, background, rgb, alpha, None, UnexplainedBackground(mapped, none))
    assert blind[:, 0][:, mapped].max() == 0
    _, blind = claim_effects(frame, background, rgb, alpha, None, UnexplainedBackground(none, mapped))
    assert blind[1, 0][pole_region].min() > 0.4


def test_a_background_point_is_carried_by_the_camera_alone():
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    # the camera pans 3 px right and 1 px down a frame (the canvas position of each pixel, x then y)
    grid = torch.stack([torch.stack((xs + 3 * t, ys + t), -1) for t in range(T)])
    follow = EffectMotion(torch.zeros(T, 3, H, W), torch.zeros(T, 1, 1, H, W), lambda s: torch.zeros(1, 3, H, W), grid)
    assert np.allclose(follow._camera_shift(8, 12, np.array([30.0, 40.0])), [-4, -12], atol=1e-4)
    assert np.allclose(follow._camera_shift(8, 4, np.array([30.0, 40.0])), [4, 12], atol=1e-4)
    assert np.allclose(EffectMotion(torch.zeros(T, 3, H, W), torch.zeros(T, 1, 1, H, W),
                                    lambda s: torch.zeros(1, 3, H, W))._camera_shift(8, 12, np.array([30.0, 40.0])), 0)


def test_a_clip_too_short_to_follow_the_region_keeps_the_nearest():
    background = textured_background()
    frame, rgb, alpha = scene(3, background)
    _, claimed = claim_effects(frame, background, rgb, alpha, motion(background, frames=4).scorer(3))
    _, nearest = claim_effects(frame, background, rgb, alpha)
    assert torch.equal(claimed, nearest)


def test_what_a_frame_shows_is_kept_only_for_the_frames_near_the_one_rendered():
    background = textured_background()
    follow, fresh = motion(background), motion(background)
    region = (shadow(8)[0, 0] > 0).numpy()
    for t in range(T):
        scores = follow.scorer(t)
        if t % 3 == 0:
            scores(region, 0)
        assert len(follow._effects) <= 2 * max(OFFSETS) + 1
        assert all(abs(s - t) <= max(OFFSETS) for s in follow._effects)
    assert follow.scorer(8)(region, 0) == fresh.score(8, region, 0)  # asked again, out of order: the same


def test_frames_where_the_moved_region_lands_on_a_mask_do_not_count():
    follow = motion(textured_background())
    region = (bystander(8)[0, 0] > 0).numpy()  # the bystander itself, moved with the bystander: always masked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert follow.score(8, region, 1) == {}


def test_a_mask_gone_or_at_the_picture_edge_gives_no_motion():
    masks = torch.zeros(3, 1, 1, H, W)
    masks[1, 0, 0, 10:20, 10:20] = 1
    masks[2, 0, 0, 0:10, 10:20] = 1  # touches the top edge
    follow = EffectMotion(torch.zeros(3, 3, H, W), masks, lambda s: torch.zeros(1, 3, H, W))
    assert np.isnan(follow.centres[0, 0]).all() and np.isnan(follow.centres[2, 0]).all()
    assert follow.centres[1, 0].tolist() == [14.5, 14.5]


def owners_with(scores: dict[int, dict[int, float]]) -> int:
    labels = np.zeros((H, W), np.int32)
    labels[24:32, 26:40] = 1
    alpha = torch.cat([caster(8), bystander(8)])  # layer 1, the bystander, is the nearest
    return int(region_owners(labels, alpha, lambda region, layer: scores[layer])[1])


def test_the_nearest_keeps_a_region_unless_another_moves_with_it_clearly_better():
    assert owners_with({0: {0: 0.9, 16: 0.9}, 1: {0: 0.2, 16: 0.3}}) == 0
    assert owners_with({0: {0: 0.9, 16: 0.9}, 1: {0: 0.9, 16: 0.8}}) == 1  # a near tie
    assert owners_with({0: {}, 1: {}}) == 1  # nothing known
    assert owners_with({0: {0: 0.9}, 1: {0: 0.1}}) == 1  # one frame is not enough
    # compared on the frames both were followed to: the caster's lucky frame 4 does not count
    assert owners_with({0: {0: 0.5, 4: 1.0, 16: 0.5}, 1: {0: 0.5, 16: 0.55}}) == 1
    # the nearest could not be followed: another must carry more than half the region onto effects
    assert owners_with({0: {0: 0.3, 16: 0.4}, 1: {}}) == 1
    assert owners_with({0: {0: 0.9, 16: 0.8}, 1: {}}) == 0


def test_a_region_only_one_object_reaches_is_not_followed():
    labels = np.zeros((H, W), np.int32)
    labels[24:32, 26:40] = 1
    alpha = torch.cat([caster(8), box(0, 0, 0, 0), box(60, 90, 4, 4)])  # an empty layer; one out of reach

    def never(region, layer):
        raise AssertionError("followed a region with one candidate")

    assert list(region_owners(labels, alpha, never)) == [-1, 0]


class Shares:
    """A region's shares moving with layer 0 and staying put, on frames 4 and 12, and whether its flow goes its own
    way."""

    def __init__(self, with_object: float | None, staying: float, own_way: bool = False):
        self.with_object, self.staying, self.own = with_object, staying, own_way

    def __call__(self, region, layer):
        return {} if self.with_object is None else {4: self.with_object, 12: self.with_object}

    def stays(self, region):
        return {4: self.staying, 12: self.staying}

    def own_way(self, region, layer):
        return self.own


def test_only_a_region_shown_to_stay_put_is_no_effect():
    region = np.zeros((H, W), bool)
    region[10:20, 10:20] = True
    empty = np.zeros((H, W), bool)
    moving, misfit = UnexplainedBackground(region, empty), UnexplainedBackground(empty, region)
    for unexplained in (None, moving, misfit):
        assert is_no_effect(region, 0, unexplained, Shares(0.1, 0.5))  # it stays put: no effect
        assert not is_no_effect(region, 0, unexplained, Shares(0.6, 0.5))  # it moves with the object
        assert not is_no_effect(region, 0, unexplained, Shares(0.0, 0.2))  # too little of it stays to tell
    # where the fit finds the background moving by itself, staying put need only win; elsewhere by twice as much
    assert is_no_effect(region, 0, moving, Shares(0.4, 0.5))
    assert not is_no_effect(region, 0, misfit, Shares(0.4, 0.5)) and not is_no_effect(region, 0, None, Shares(0.4, 0.5))
    # followed to too few frames: what moves by itself is none, a misfit or a region off the maps is the object's
    assert is_no_effect(region, 0, moving, Shares(None, 0.5)) and is_no_effect(region, 0, moving, None)
    assert not is_no_effect(region, 0, misfit, Shares(None, 0.5)) and not is_no_effect(region, 0, misfit, None)
    assert not is_no_effect(region, 0, None, None)


def test_a_region_that_does_not_move_with_its_object_and_goes_its_own_way_is_no_effect():
    region = np.zeros((H, W), bool)
    region[10:20, 10:20] = True
    empty = np.zeros((H, W), bool)
    for unexplained in (None, UnexplainedBackground(region, empty), UnexplainedBackground(empty, region)):
        assert is_no_effect(region, 0, unexplained, Shares(0.1, 0.1, own_way=True))  # neither stays nor follows
        assert is_no_effect(region, 0, unexplained, Shares(None, 0.1, own_way=True))  # not followed: its flow decides
        assert not is_no_effect(region, 0, unexplained, Shares(0.6, 0.1, own_way=True))  # moves with the object
        assert not is_no_effect(region, 0, unexplained, Shares(0.1, 0.1))  # no motion of its own: the object's


def mover(t: int) -> torch.Tensor:
    """Something nobody masked, moving down 2 px a frame between the caster and the bystander."""
    return 0.5 * box(2 + 2 * t, 70, 8, 8)


def flows(frames: int = T, mover_flow: tuple[float, float] = (0.0, 2.0), scale: int = 1) -> torch.Tensor:
    """The clip's flow (x, y) to the next frame, the camera's taken out (it stands still), at 1/scale of the frames'
    size and in those pixels: the caster moves right, the bystander left, the mover as given, the ground not at all."""
    flow = torch.zeros(frames, 2, H, W)
    for t in range(frames):
        for where, (dx, dy) in ((caster(t), (2.0, 0.0)), (bystander(t), (-2.0, 0.0)), (mover(t), mover_flow)):
            inside = where[0, 0] > 0
            flow[t, 0][inside], flow[t, 1][inside] = dx, dy
    generator = torch.Generator().manual_seed(1)
    flow = flow + 0.05 * torch.randn(flow.shape, generator=generator)  # DIS's jitter over texture
    return torch.nn.functional.avg_pool2d(flow, scale) / scale if scale > 1 else flow


@pytest.mark.parametrize("scale", [1, 2])  # flow at the working resolution, and at half (scale 0.5)
def test_a_region_goes_its_own_way_where_its_flow_is_unlike_its_objects(scale):
    background = textured_background()
    masks = torch.stack([torch.cat([dilated(caster(t)), dilated(bystander(t))]) for t in range(T)])
    frames = torch.zeros(T, 3, H, W)
    region = (mover(8)[0, 0] > 0).numpy()
    down = EffectMotion(frames, masks, lambda s: background, flow=flows(scale=scale))
    assert down.own_way(8, region, 0) and down.own_way(8, region, 1)  # across both objects' ways
    left = EffectMotion(frames, masks, lambda s: background, flow=flows(mover_flow=(-2.0, 0.0), scale=scale))
    assert left.own_way(8, region, 0) and not left.own_way(8, region, 1)  # against the caster, with the bystander
    still = EffectMotion(frames, masks, lambda s: background, flow=flows(mover_flow=(0.0, 0.0), scale=scale))
    assert not still.own_way(8, region, 0)  # no motion of its own: the ground's (a shadow's texture)
    slow = EffectMotion(frames, masks, lambda s: background, flow=flows(mover_flow=(0.0, 0.4), scale=scale))
    assert not slow.own_way(8, region, 0)  # under a working pixel a frame
    assert not EffectMotion(frames, masks, lambda s: background).own_way(8, region, 0)  # no flow, no verdict
    assert down.own_way(T - 1, (mover(T - 2)[0, 0] > 0).numpy(), 0)  # the last frame: the pair before it


def test_an_unmasked_mover_is_claimed_by_none_with_flow_and_by_the_nearest_without():
    background = textured_background()

    def frame_at(t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frame, rgb, alpha = scene(t, background)
        return composite_over(frame, [torch.full_like(background, -1.0)], [mover(t)]), rgb, alpha

    clip = torch.cat([frame_at(t)[0] for t in range(T)])
    masks = torch.stack([torch.cat([dilated(caster(t)), dilated(bystander(t))]) for t in range(T)])
    frame, rgb, alpha = frame_at(8)
    inside, shade = mover(8)[0, 0] > 0, shadow(8)[0, 0] > 0
    blind = EffectMotion(clip, masks, lambda s: background)
    _, claimed = claim_effects(frame, background, rgb, alpha, blind.scorer(8))
    assert claimed[:, 0][:, inside].max() > 0.4  # it neither stays put nor moves with anyone: the nearest takes it
    seeing = EffectMotion(clip, masks, lambda s: background, flow=flows())
    _, claimed = claim_effects(frame, background, rgb, alpha, seeing.scorer(8))
    assert claimed[:, 0][:, inside].max() == 0
    assert (claimed[0, 0][shade] - 0.4).abs().max() < 0.06  # the caster's shadow is still the caster's
