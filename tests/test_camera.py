"""Camera geometry: the masked registered median that the canvas background starts from, and guided alpha upsampling."""

import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omnimatte.camera import (_excluded_area, _frame_area, canvas_coordinates, first_reached, frame_view, nan_median,
                             registered_median)
from omnimatte.render.alpha_upsampling import guided_upsample
from omnimatte.train.video import grown_objects, objects_reach, starting_plate


def test_masked_median_leaves_out_an_object_that_stands_still_most_of_the_time():
    """A square that sits on one spot in 5 of 7 frames is the plain median there; with its masks left out,
    the two frames that show the ground decide."""
    rng = np.random.default_rng(0)
    plate = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    frames = np.repeat(plate[None], 7, axis=0)
    masks = np.zeros((7, 16, 24), bool)
    for t in range(7):
        x = 4 if t < 5 else 14
        frames[t, 4:10, x:x + 6] = (255, 0, 0)
        masks[t, 4:10, x:x + 6] = True
    identity = np.repeat(np.eye(3)[None], 7, axis=0)
    plain = registered_median(frames, identity, (16, 24))
    assert (plain[5:9, 5:9] == (255, 0, 0)).all()
    masked = registered_median(frames, identity, (16, 24), exclude=masks)
    assert np.array_equal(masked, plate.astype(np.float32))


def test_masked_median_falls_back_where_every_frame_is_masked():
    frames = np.full((3, 8, 8, 3), 50, np.uint8)
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:4, 2:4] = True
    frames[:, 2:4, 2:4] = 200
    median = registered_median(frames, np.repeat(np.eye(3)[None], 3, axis=0), (8, 8), exclude=masks)
    assert (median[2:4, 2:4] == 200).all() and (median[5:, 5:] == 50).all()


def test_median_before_first_exclusion_leaves_out_what_an_object_leaves_behind():
    """A car crosses a patch in frame 2 and leaves dust there for the four frames after: of the five frames
    its mask leaves free, the dusty four win the masked median; only the two frames before the car reached
    the patch vote with before_first_exclusion. Where fewer than min_votes frames came first (the patch the
    car stands on in frame 0), the masked median stays."""
    ground, dust = (90, 120, 60), (200, 180, 140)
    frames = np.zeros((7, 8, 16, 3), np.uint8)
    frames[:] = ground
    masks = np.zeros((7, 8, 16), bool)
    masks[2, :, 4:8] = True  # the car over the patch
    frames[3:, :, 4:8] = dust  # the dust it leaves
    masks[0, :, 10:14] = True  # the car's start: no frame before it
    frames[1:, :, 10:14] = dust
    identity = np.repeat(np.eye(3)[None], 7, axis=0)
    masked = registered_median(frames, identity, (8, 16), exclude=masks)
    assert (masked[:, 4:8] == dust).all()
    first = registered_median(frames, identity, (8, 16), exclude=masks, before_first_exclusion=True)
    assert (first[:, 4:8] == ground).all()
    assert (first[:, 10:14] == dust).all() and (first[:, :4] == ground).all()
    assert (registered_median(frames, identity, (8, 16), exclude=masks, before_first_exclusion=True,
                              min_votes=3)[:, 4:8] == dust).all()
    reached = first_reached(identity, masks, (8, 16))
    assert (reached[:, 4:8] == 2).all()  # the frame the car reached the patch in
    assert (reached[:, 10:14] == 7).all() and (reached[:, :4] == 7).all()  # too few frames before; never reached
    assert (first_reached(identity, masks, (8, 16), min_votes=3)[:, 4:8] == 7).all()
    with pytest.raises(ValueError, match="min_votes"):
        first_reached(identity, masks, (8, 16), min_votes=0)


def _walk(num_frames: int, width: int, ahead: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A walker crossing a strip 2 px a frame from its left end: frames, masks and the 8 px around the walker.
    With `ahead`, its shadow lies ahead of it (darkest next to it); else it leaves dust behind that fades."""
    frames = np.zeros((num_frames, 4, width, 3), np.float32)
    frames[:] = GROUND
    masks = np.zeros((num_frames, 4, width), bool)
    near = np.zeros_like(masks)
    for t in range(num_frames):
        left = 2 * t
        masks[t, :, left:left + 3] = True
        near[t, :, max(0, left - 8):left + 11] = True
        if ahead:
            for x in range(left + 3, min(left + 9, width)):
                frames[t, :, x] = np.multiply(GROUND, 0.3 + 0.1 * (x - left - 3))
        else:
            for x in range(left):
                age = t - x // 2
                frames[t, :, x] = np.add(GROUND, np.multiply(np.subtract(DUST, GROUND), max(0.0, 1 - 0.04 * age)))
        frames[t, :, left:left + 3] = (255, 0, 0)
    return np.rint(frames).astype(np.uint8), masks, near


GROUND, DUST = (90, 120, 60), (200, 180, 140)


def test_median_beyond_reach_leaves_out_what_an_object_casts_ahead_of_it():
    """A walker crosses a strip with its shadow lying ahead of it from the clip's first frame. Where the shadow
    lies from the start, every frame before the walker arrives shows the shadow, so the median before first
    exclusion is the shadow; with `within_reach` (8 px around the walker) the frames that show a pixel beyond its
    reach vote: where none does before it arrives, those after it has gone, whose ground is steadier than the
    shadow that darkens as the walker comes. A walker that leaves dust behind it instead, fading: the frames
    before it arrived are the steadier there, and the dust stays out. Where the walker comes from afar, the
    frames before it arrived and beyond its reach vote."""
    num_frames, width = 24, 48
    identity = np.repeat(np.eye(3)[None], num_frames, axis=0)
    frames, masks, near = _walk(num_frames, width, ahead=True)
    first = registered_median(frames, identity, (4, width), exclude=masks, before_first_exclusion=True)
    assert (first[:, 8] != GROUND).any()  # in the shadow from frame 0 until the walker reaches it in frame 3
    beyond = registered_median(frames, identity, (4, width), exclude=masks, before_first_exclusion=True,
                               within_reach=near)
    assert (beyond[:, 3:40] == GROUND).all()
    assert np.array_equal(starting_plate(frames, grown_objects(masks[:, None], margin=0), identity, (4, width), near),
                          beyond)  # the canvas's

    frames, masks, near = _walk(num_frames, width, ahead=False)
    beyond = registered_median(frames, identity, (4, width), exclude=masks, before_first_exclusion=True,
                               within_reach=near)
    assert (registered_median(frames, identity, (4, width), exclude=masks)[:, 5:30] != GROUND).any()  # the dust
    assert (beyond[:, 5:40] == GROUND).all()  # (columns 3 and 4: frame 0 alone shows them before the walker)

    # objects_reach is that zone in object sizes: the walker's mask has 12 px, so 2 sizes reach 6.9 px past column 2.
    zone = objects_reach(masks[:, None], 2.0)
    assert zone[0, 0, :9].all() and not zone[0, 0, 9:].any()


def test_first_reached_follows_the_camera():
    """A camera panning 2 px a frame over a still ground while an object stands at frame column 10: canvas
    column 10 + 2t is reached in frame t, so the map runs along the canvas in steps of the pan."""
    masks = np.zeros((5, 4, 16), bool)
    masks[:, :, 10] = True
    homographies = np.stack([np.array([[1.0, 0, 2 * t], [0, 1.0, 0], [0, 0, 1]]) for t in range(5)])
    reached = first_reached(homographies, masks, (4, 26))
    assert [int(reached[0, 10 + 2 * t]) for t in range(2, 5)] == [2, 3, 4]
    assert (reached[:, :9] == 5).all()  # the object never gets there


def test_tiles_do_not_change_the_median_or_first_reached():
    """A pan with a moving object and what it leaves behind: the median, masked and before first exclusion, and
    first_reached made in 7-pixel tiles (frames covering only some tiles, tiles no frame covers) equal those
    made in one tile holding the whole canvas."""
    rng = np.random.default_rng(5)
    num_frames, height, width = 9, 12, 20
    frames = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    masks = np.zeros((num_frames, height, width), bool)
    for t in range(num_frames):
        masks[t, 3:8, 2 + t:6 + t] = True
    homographies = np.stack([np.array([[1.0, 0, 3.5 * t], [0, 1.0, 0.4 * t], [0, 0, 1]]) for t in range(num_frames)])
    canvas_size = (height + 5, width + 30)  # the last rows and columns no frame covers
    whole = max(canvas_size)
    near = np.zeros_like(masks)
    for t in range(num_frames):
        near[t, 1:10, max(0, t - 2):10 + t] = True
    for kwargs in ({}, {"exclude": masks}, {"exclude": masks, "before_first_exclusion": True},
                   {"exclude": masks, "before_first_exclusion": True, "within_reach": near}):
        tiled = registered_median(frames, homographies, canvas_size, tile=7, **kwargs)
        assert np.array_equal(tiled, registered_median(frames, homographies, canvas_size, tile=whole, **kwargs))
    assert np.array_equal(first_reached(homographies, masks, canvas_size, tile=7),
                          first_reached(homographies, masks, canvas_size, tile=whole))
    with pytest.raises(ValueError, match="tile"):
        registered_median(frames, homographies, canvas_size, tile=0)


def test_median_holds_the_rim_that_only_frame_edges_see_under_a_sub_pixel_pan():
    """A camera that moves by fractions of a pixel: the canvas's outer rows and columns lie within only the
    frames' outermost pixels. They still get the ground's colour (not black), so every frame's view of the
    median shows its own background out to its edge pixels."""
    rng = np.random.default_rng(3)
    ground = cv2.GaussianBlur(rng.uniform(0, 255, (48, 72, 3)).astype(np.float32), (0, 0), 3)
    ground = 40 + (ground - ground.min()) / np.ptp(ground) * 175  # smooth texture in 40..215
    offsets = [(0.3 + 1.7 * t, 0.6 + 0.45 * t) for t in range(6)]  # canvas position of each frame's pixel (0, 0)
    height, width = 32, 48
    frames, homographies = [], []
    for x, y in offsets:
        to_canvas = np.array([[1.0, 0, x], [0, 1.0, y], [0, 0, 1]])
        frames.append(cv2.warpPerspective(ground, np.linalg.inv(to_canvas), (width, height), flags=cv2.INTER_LINEAR))
        homographies.append(to_canvas)
    frames, homographies = np.stack(frames).round().clip(0, 255).astype(np.uint8), np.stack(homographies)
    canvas_size = (int(np.ceil(offsets[-1][1])) + height, int(np.ceil(offsets[-1][0])) + width)
    plate = registered_median(frames, homographies, canvas_size)
    assert plate.min() > 30  # no black anywhere, the rim included
    for t in range(len(frames)):
        view = frame_view(plate, homographies[t], height, width).astype(np.float64)
        error = np.abs(view - frames[t]).max(-1)
        assert max(error[[0, -1]].mean(), error[:, [0, -1]].mean()) < 2 * error[2:-2, 2:-2].mean() + 1, t


def test_guided_upsampling_follows_the_frame_edge_that_bilinear_blurs():
    """A sharp-edged object at 64x64, its alpha known only at 16x16: the guided alpha snaps to the edge."""
    size = 64
    truth = torch.zeros(1, 1, size, size)
    truth[..., 20:45, 13:50] = 1.0
    frame = torch.where(truth.bool().expand(1, 3, size, size), torch.tensor([0.9, 0.2, 0.1]).view(1, 3, 1, 1),
                        torch.tensor([0.2, 0.5, 0.3]).view(1, 3, 1, 1))
    alpha_low = F.interpolate(truth, size=(16, 16), mode="area")
    frame_low = F.interpolate(frame, size=(16, 16), mode="area")
    bilinear = F.interpolate(alpha_low, size=(size, size), mode="bilinear", align_corners=False)
    guided = guided_upsample(alpha_low, frame_low, frame)
    assert guided.shape == (1, 1, size, size)
    assert (guided - truth).abs().mean() < 0.5 * (bilinear - truth).abs().mean()


def test_nan_median_is_numpys_value_for_value():
    rng = np.random.default_rng(3)
    for count in (1, 2, 5, 8):
        stack = rng.uniform(0, 255, (count, 40, 3)).astype(np.float32)
        stack[rng.random((count, 40)) < 0.5] = np.nan  # even and odd counts of values per pixel
        stack[:, :2] = np.nan  # pixels no frame shows stay NaN
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "All-NaN slice"
            expected = np.nanmedian(stack, axis=0)
        result = nan_median(stack)
        assert result.dtype == np.float32
        assert np.array_equal(result, expected, equal_nan=True)
    assert nan_median(np.array([[1.0], [np.nan], [4.0], [2.0]], np.float32))[0] == 2.0
    assert nan_median(np.array([[1.0], [np.nan], [4.0], [3.0], [2.0]], np.float32))[0] == 2.5


def test_median_is_the_nanmedian_of_the_frames_that_vote():
    """The tiled median against numpy's nanmedian of every frame warped onto the whole canvas, each counted where
    its pixel area covers the canvas pixel and no excluded pixel of it touches there, or where every covering frame
    is excluded, all the frames covering it; in tiles whose frames differ in number, so that nothing one tile
    leaves in the reused buffers reaches the next."""
    rng = np.random.default_rng(11)
    num_frames, height, width = 10, 14, 22
    frames = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    masks = np.zeros((num_frames, height, width), bool)
    for t in range(num_frames):
        masks[t, 4:9, 3 + t:8 + t] = True
    masks[:, 10:, :4] = True  # a corner every frame leaves out: the fallback to all covering frames
    homographies = np.stack([np.array([[1.0, 0.02 * t, 2.7 * t], [0, 1.0, 0.35 * t], [0, 0, 1]])
                             for t in range(num_frames)])
    canvas_size = (height + 6, width + 28)
    canvas_h, canvas_w = canvas_size
    warped = np.stack([cv2.warpPerspective(f.astype(np.float32), h, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE) for f, h in zip(frames, homographies)])
    inside = np.stack([_frame_area((height, width), h, canvas_size) for h in homographies])
    excluded = np.stack([_excluded_area(m, h, canvas_size) for m, h in zip(masks, homographies)])
    kept = inside & ~excluded
    votes = np.where(kept.any(axis=0), kept, inside)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the canvas pixels no frame covers
        expected = np.nanmedian(np.where(votes[..., None], warped, np.nan), axis=0)
        unmasked = np.nanmedian(np.where(inside[..., None], warped, np.nan), axis=0)
    covered = inside.any(axis=0)
    assert 0 < covered.mean() < 1
    for tile in (5, 9, max(canvas_size)):
        plate = registered_median(frames, homographies, canvas_size, exclude=masks, tile=tile)
        assert np.array_equal(plate[covered], expected[covered].astype(np.float32)), tile
        plate = registered_median(frames, homographies, canvas_size, tile=tile)
        assert np.array_equal(plate[covered], unmasked[covered].astype(np.float32)), tile


def test_canvas_coordinates_map_each_frame_through_its_own_homography():
    """Every pixel of every frame lands where its own homography (projective, with the divide) takes it."""
    rng = np.random.default_rng(2)
    jitter = rng.normal(0, 1e-3, (4, 3, 3)) * [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    homographies = np.stack([np.array([[1.0 + 0.01 * t, 0.03, 5.0 * t], [-0.02, 0.98, 2.0 + t], [1e-4 * t, -2e-4, 1.0]])
                             for t in range(4)]) + jitter
    height, width = 9, 13
    coordinates = canvas_coordinates(homographies, height, width)
    assert coordinates.shape == (4, height, width, 2) and coordinates.dtype == np.float32
    pixels = np.stack(np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)), -1)
    for t, matrix in enumerate(homographies):
        expected = cv2.perspectiveTransform(pixels.reshape(-1, 1, 2), matrix).reshape(height, width, 2)
        assert np.abs(coordinates[t] - expected).max() < 1e-4, t


def test_median_refuses_frames_it_would_misread():
    """Frames without three channels, or float frames holding NaN or infinity (each would count as a vote), are
    refused by name rather than read as something else."""
    homographies = np.stack([np.eye(3)] * 2)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        registered_median(np.zeros((2, 4, 4, 4), np.uint8), homographies, (4, 4))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        registered_median(np.zeros((2, 4, 4), np.uint8), homographies, (4, 4))
    frames = np.zeros((2, 4, 4, 3), np.float32)
    frames[1, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        registered_median(frames, homographies, (4, 4))
    frames[1, 2, 2, 0] = 7.0
    assert registered_median(frames, homographies, (4, 4))[2, 2, 0] == 3.5
