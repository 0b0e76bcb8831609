"""The evaluate stage: each metric on hand-made mattes with known answers, the median
background baseline, and the stage writing metrics.json and its contact sheet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from omnimatte.errors import StageError
from omnimatte.evaluate import (
    alpha_leak,
    effect_recall,
    evaluate,
    soft_iou,
    visibility,
)
from omnimatte.camera import registered_median, view_canvas
from omnimatte.imaging import psnr
from omnimatte.io import read_frames, read_png, save_json, write_frames
from omnimatte.synthetic import render_clip, write_clip


def band(columns: slice, value: float = 1.0, shape: tuple[int, int] = (8, 16)) -> np.ndarray:
    matte = np.zeros(shape)
    matte[:, columns] = value
    return matte


def test_soft_iou_known_values():
    truth = band(slice(0, 8))
    assert soft_iou(truth, truth) == 1.0
    assert soft_iou(band(slice(8, 16)), truth) == 0.0
    assert soft_iou(band(slice(4, 12)), truth) == pytest.approx(1 / 3)  # overlap 4 columns of a union of 12
    assert soft_iou(band(slice(0, 8), 0.5), truth) == pytest.approx(0.5)  # half as opaque everywhere
    assert soft_iou(np.zeros((8, 16)), np.zeros((8, 16))) == 1.0  # nothing to find, nothing found


def test_effect_recall_known_values():
    shadow = band(slice(0, 8), 0.6)
    assert effect_recall(band(slice(0, 4)), shadow) == pytest.approx(0.5)  # holds the left half of the shadow
    assert effect_recall(band(slice(0, 8), 0.3), shadow) == pytest.approx(0.5)  # half as opaque as the shadow
    assert effect_recall(np.ones((8, 16)), shadow) == pytest.approx(1.0)  # more than the shadow is no better
    assert effect_recall(band(slice(8, 16)), shadow) == 0.0
    assert np.isnan(effect_recall(np.ones((8, 16)), np.zeros((8, 16))))


def test_alpha_leak_known_values():
    truth = band(slice(0, 8))
    assert alpha_leak(truth, truth) == 0.0
    assert alpha_leak(band(slice(0, 12)), truth) == pytest.approx(0.5)  # 4 extra columns per 8 true ones
    assert alpha_leak(band(slice(0, 4)), truth) == 0.0  # missing alpha is not leak


def test_psnr_known_value():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert psnr(a, a + 1) == pytest.approx(20 * np.log10(255))  # mean squared error 1
    assert psnr(a, a) > 100


def test_hidden_pixels_do_not_count():
    """Where an opaque object in front hides the back object, the back layer's alpha is not judged."""
    back_truth = band(slice(0, 8))
    front_truth = band(slice(4, 8))
    back_shown, front_shown = visibility([back_truth, front_truth])
    assert np.array_equal(front_shown, np.ones_like(front_truth))
    assert np.array_equal(back_shown, 1 - front_truth)
    guess = band(slice(0, 4))  # right where it shows, nothing behind the front object
    assert soft_iou(guess, back_truth) == pytest.approx(0.5)
    assert soft_iou(guess, back_truth, back_shown) == 1.0
    # A semi-transparent layer in front (a shadow) counts the pixel behind it by half.
    assert np.allclose(visibility([back_truth, band(slice(0, 16), 0.5)])[0], 0.5)


def moving_occluder_frames(plate: np.ndarray, offsets: list[tuple[int, int]], size: tuple[int, int]) -> np.ndarray:
    """Crops of `plate` at the offsets, each with a black square that moves across the frame."""
    height, width = size
    frames = []
    for t, (x, y) in enumerate(offsets):
        frame = plate[y:y + height, x:x + width].copy()
        left = 3 + 5 * t
        frame[4:12, left:left + 6] = 0
        frames.append(frame)
    return np.stack(frames)


def test_median_background_of_a_moving_occluder_is_the_clean_plate():
    rng = np.random.default_rng(0)
    plate = rng.integers(0, 256, (16, 48, 3), dtype=np.uint8)
    frames = moving_occluder_frames(plate, [(0, 0)] * 7, (16, 48))
    identity = np.repeat(np.eye(3)[None], 7, axis=0)
    canvas = registered_median(frames, identity, (16, 48))
    assert np.array_equal(canvas, plate)
    assert np.array_equal(view_canvas(canvas, identity, 16, 48), np.repeat(plate[None], 7, axis=0))


def test_median_background_through_a_panning_camera():
    """Frames that pan across a larger plate: registered by the homographies, their median is
    the plate, and each frame's view of it is that frame's clean background."""
    rng = np.random.default_rng(1)
    plate = rng.integers(0, 256, (20, 64, 3), dtype=np.uint8)
    offsets = [(2 * t, t % 3) for t in range(7)]
    frames = moving_occluder_frames(plate, offsets, (16, 48))
    homographies = np.stack([np.array([[1.0, 0, x], [0, 1.0, y], [0, 0, 1]]) for x, y in offsets])
    canvas = registered_median(frames, homographies, (20, 64))
    covered = np.zeros((20, 64), bool)
    for x, y in offsets:
        covered[y:y + 16, x:x + 48] = True
    # Every pixel the frames see at least five times has the plate's value.
    seen = sum(np.pad(np.ones((16, 48)), ((y, 4 - y), (x, 16 - x))) for x, y in offsets)
    assert np.array_equal(canvas[seen >= 5], plate[seen >= 5])
    # Pixels no frame covers copy a covered one (the nearest), so no view blends in black.
    covered_colours = {tuple(colour) for colour in canvas[covered]}
    assert all(tuple(colour) in covered_colours for colour in canvas[~covered])
    views = view_canvas(canvas, homographies, 16, 48)
    clean = np.stack([plate[y:y + 16, x:x + 48] for x, y in offsets])
    assert psnr(views, clean) > psnr(frames, clean) + 10


def perfect_results(tmp_path: Path, preset: str = "crossing") -> tuple[Path, list[str]]:
    """A synthetic clip and an 'omnimatte' that is its ground truth, with the true camera as homographies."""
    clip = render_clip(preset, 10, 192, 112)
    write_clip(clip, tmp_path / "clip")
    write_frames(tmp_path / "frames", clip.frames)
    omnimatte = tmp_path / "omnimatte"
    for name in clip.object_names:
        write_frames(omnimatte / "layers" / name / "rgba", clip.layers[name])
    write_frames(omnimatte / "background", clip.background)
    write_frames(omnimatte / "reconstruction", clip.frames)
    # Frame -> world through the true camera, shifted so every frame lands on a canvas at (0, 0).
    to_world = np.linalg.inv(clip.camera)
    corners = np.array([[0, 0, 1], [191, 0, 1], [0, 111, 1], [191, 111, 1]], float)
    mapped = np.einsum("tij,kj->tki", to_world, corners)[..., :2].reshape(-1, 2)
    low, high = np.floor(mapped.min(0)), np.ceil(mapped.max(0)) + 1
    shift = np.array([[1, 0, -low[0]], [0, 1, -low[1]], [0, 0, 1]])
    homographies = shift @ to_world
    (tmp_path / "homography").mkdir()
    np.save(tmp_path / "homography" / "homographies.npy", homographies)
    save_json(tmp_path / "homography" / "canvas.json",
              {"width": int(high[0] - low[0]), "height": int(high[1] - low[1]), "num_frames": clip.n_frames})
    return tmp_path, clip.object_names


def test_evaluate_command_writes_every_score_and_the_contact_sheet(tmp_path: Path):
    work, names = perfect_results(tmp_path)
    command = [sys.executable, "-m", "omnimatte", "evaluate", "--sample", "crossing", "--omnimatte",
               str(work / "omnimatte"), "--frames", str(work / "frames"), "--ground-truth", str(work / "clip/gt"),
               "--masks", str(work / "clip/masks"), "--homography", str(work / "homography"), "--objects",
               ",".join(names), "--out", str(work / "metrics.json"), "--sheet", str(work / "evaluation.png")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((work / "metrics.json").read_text())
    assert set(metrics["objects"]) == set(names) == {"far_walker", "near_walker"}
    for scores in metrics["objects"].values():
        # The truth scored against itself ...
        assert scores["soft_iou"] == pytest.approx(1.0)
        assert scores["effect_recall"] == pytest.approx(1.0)
        assert scores["alpha_leak"] == pytest.approx(0.0)
        # ... and the coarse mask, which leaves the shadow out.
        assert set(scores["mask_baseline"]) == {"soft_iou", "effect_recall", "alpha_leak"}
        assert scores["mask_baseline"]["effect_recall"] < 0.3
    assert metrics["background_psnr"] > 100 and metrics["reconstruction_psnr"] > 100
    # The median baseline is the registered median of these frames through these homographies, viewed back ...
    frames, clean = read_frames(work / "frames"), read_frames(work / "clip/gt/background")
    homographies = np.load(work / "homography" / "homographies.npy")
    canvas = json.loads((work / "homography" / "canvas.json").read_text())
    size = (canvas["height"], canvas["width"])

    def median_view(images: np.ndarray) -> np.ndarray:
        return view_canvas(registered_median(images, homographies, size), homographies, *frames.shape[1:3])

    median_psnr = metrics["median_baseline"]["background_psnr"]
    assert median_psnr == pytest.approx(psnr(median_view(frames), clean), abs=1e-9)
    # ... and it removes the walkers: the walkers cost the frames 8 dB against the plate, and the median of the
    # frames comes within 0.5 dB of the median of the clean plates themselves (what resampling alone leaves).
    resampled_psnr = psnr(median_view(clean), clean)
    assert resampled_psnr > psnr(frames, clean) + 5
    assert resampled_psnr - 0.5 < median_psnr, (median_psnr, resampled_psnr)
    assert set(metrics["summary"]) == {"soft_iou", "effect_recall", "alpha_leak", "mask_soft_iou",
                                       "mask_effect_recall", "mask_alpha_leak", "background_psnr",
                                       "median_background_psnr", "reconstruction_psnr"}
    sheet = read_png(work / "evaluation.png")
    assert sheet.shape == (3 * 3 * 112, 4 * 192, 3)  # 3 frames x (background row + 2 objects), 4 panels a row
    assert "median baseline" in result.stderr


def test_evaluate_names_an_object_without_ground_truth(tmp_path: Path):
    work, _ = perfect_results(tmp_path, preset="dog")
    with pytest.raises(StageError, match="cat"):
        evaluate("dog", work / "omnimatte", work / "frames", work / "clip/gt", ["cat"])
