"""The sampled background: each frame's background as the median of what the clip's frames show there."""

import cv2
import numpy as np
import pytest

from omnimatte.camera import translation
from omnimatte.render.sampled_background import (MIN_VOTES, SampledBackground, pixel_homographies,
                                                 source_frames)

T, H, W = 10, 40, 56
PAN = 3  # the camera moves this many whole pixels a frame to the right over the plate


def textured_plate(seed: int = 0) -> np.ndarray:
    """A plate (H, W + PAN * T, 3) in [0, 1], on 8-bit levels."""
    rng = np.random.default_rng(seed)
    return rng.integers(50, 230, size=(H, W + PAN * T, 3)).astype(np.float32) / 255


def as_bytes(frames: np.ndarray) -> np.ndarray:
    return (frames * 255).round().clip(0, 255).astype(np.uint8)


def panning_clip(plate: np.ndarray):
    """Frames cropped from the plate as the camera pans (in [0, 1]; as_bytes for the sampler), and their
    homographies (frame pixel -> plate pixel)."""
    frames = np.stack([plate[:, PAN * t:PAN * t + W] for t in range(T)]).copy()
    homographies = np.stack([translation(PAN * t, 0) for t in range(T)])
    return frames, homographies


def learnt_grey(t: int) -> np.ndarray:
    return np.full((H, W, 3), 0.5, np.float32)


def settled(votes: np.ndarray) -> np.ndarray:
    """Pixels that enough frames vote on, away from where the learnt background is blended in (the clip's first and
    last columns: a pan shows them to few frames) and from the frame's rim."""
    ok = cv2.erode((votes >= MIN_VOTES).astype(np.uint8), np.ones((17, 17), np.uint8), borderValue=1) > 0
    ok[:4], ok[-4:], ok[:, :4], ok[:, -4:] = False, False, False, False
    return ok


def test_the_homographies_are_read_back_from_the_canvas_grid():
    homographies = np.stack([translation(1.5 * t, -0.25 * t) @ np.array([[1.01, 0.02, 0], [0.0, 0.99, 0], [1e-4, 0, 1]])
                             for t in range(3)])
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    points = np.einsum("tij,hwj->thwi", homographies, np.stack([xs, ys, np.ones_like(xs)], -1))
    grid = (points[..., :2] / points[..., 2:]) / 100.0 - 0.5  # any fixed coordinates
    fitted = pixel_homographies(grid.astype(np.float32))
    for found, true in zip(fitted, homographies):
        corners = np.array([[0, 0, 1], [W - 1, 0, 1], [W - 1, H - 1, 1], [0, H - 1, 1]], float).T
        mapped, expected = found @ corners, true @ corners
        mapped, expected = mapped[:2] / mapped[2], (expected[:2] / expected[2]) / 100.0 - 0.5
        assert np.abs(mapped - expected).max() < 1e-4


def test_the_voting_frames_are_spread_over_the_clip_with_the_frame_itself_among_them():
    assert source_frames(3, 10, 32) == list(range(10))
    chosen = source_frames(57, 240, 16)
    assert 57 in chosen and len(chosen) <= 16 and chosen[0] == 0 and chosen[-1] == 239
    assert len(set(chosen)) == len(chosen)


def test_an_object_that_stays_on_a_spot_most_of_the_clip_is_left_out_and_the_ground_comes_back_exactly():
    plate = textured_plate()
    frames, homographies = panning_clip(plate)
    free = np.ones((T, H, W), bool)
    # An object that covers plate columns 40-55 in seven frames of ten: its colour would win a plain median.
    for t in range(7):
        left = 40 - PAN * t
        frames[t, 10:30, max(left, 0):max(left + 16, 0)] = (1.0, 0.0, 0.0)
        free[t, 8:32, max(left - 2, 0):max(left + 18, 0)] = False
    sampled = SampledBackground(frames=as_bytes(frames), free=free, homographies=homographies, learnt=learnt_grey)
    for t in (0, 3, 8):
        background, votes = sampled.frame(t)
        truth = plate[:, PAN * t:PAN * t + W]
        ok = settled(votes)
        assert ok.mean() > 0.3
        assert np.abs(background[ok] - truth[ok]).max() < 1e-4
    ignored = SampledBackground(frames=as_bytes(frames), free=np.ones_like(free), homographies=homographies,
                                learnt=learnt_grey)
    background, _ = ignored.frame(0)
    assert np.abs(background[12:28, 42:52] - (1.0, 0.0, 0.0)).max() < 1e-4  # what the free map keeps out


def test_a_shadow_no_layer_holds_is_outvoted_and_a_frame_keeps_its_own_exposure():
    plate = textured_plate(1)
    frames, homographies = panning_clip(plate)
    gains = np.linspace(0.9, 1.1, T).astype(np.float32)
    for t in range(T):
        if t in (2, 3):  # a shadow on plate columns 40-50 in two frames, held by no layer
            frames[t, 5:20, 40 - PAN * t:50 - PAN * t] *= 0.5
        frames[t] *= gains[t]
    sampled = SampledBackground(frames=as_bytes(frames), free=np.ones((T, H, W), bool), homographies=homographies,
                                learnt=learnt_grey)
    for t in (3, 9):
        background, votes = sampled.frame(t)
        truth = plate[:, PAN * t:PAN * t + W] * gains[t]
        ok = settled(votes)
        assert ok.mean() > 0.3
        assert np.abs(background[ok] - truth[ok]).max() < 0.01  # the sources' own 8-bit rounding, rescaled


def test_where_too_few_frames_show_the_ground_the_learnt_background_shows():
    plate = textured_plate(2)
    frames, homographies = panning_clip(plate)
    free = np.ones((T, H, W), bool)
    for t in range(T):  # a spot of the plate no frame shows free
        free[t, 15:25, 30 - PAN * t:40 - PAN * t] = False
    sampled = SampledBackground(frames=as_bytes(frames), free=free, homographies=homographies, learnt=learnt_grey)
    background, votes = sampled.frame(5)  # the spot at the frame's columns 15-25
    assert (votes[17:23, 17:23] == 0).all()
    assert np.abs(background[17:23, 17:23] - 0.5).max() < 1e-6
    ok = settled(votes)
    assert ok.mean() > 0.15
    assert np.abs(background[ok] - plate[:, 15:15 + W][ok]).max() < 1e-4  # away from the spot, the frames' own


def test_frames_homographies_and_free_maps_that_disagree_are_refused():
    plate = textured_plate()
    frames, homographies = panning_clip(plate)
    with pytest.raises(ValueError, match="disagree"):
        SampledBackground(frames=as_bytes(frames), free=np.ones((T - 1, H, W), bool), homographies=homographies,
                          learnt=learnt_grey)
    with pytest.raises(ValueError, match="uint8"):
        SampledBackground(frames=frames, free=np.ones((T, H, W), bool), homographies=homographies, learnt=learnt_grey)

