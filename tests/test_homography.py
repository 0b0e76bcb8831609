"""Tests of the homography stage on synthetic clips whose true camera motion is known.

A large random scene is filmed by a virtual camera that pans, rotates and zooms a
little each frame; the recovered frame->canvas homographies, taken relative to frame 0,
must map frame pixels where the true camera motion does.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from omnimatte.errors import StageError
from omnimatte.camera import canvas_coordinates
from omnimatte.contract import HomographyFiles, load_camera
from omnimatte.homography import (
    DENSE_COLOUR,
    FALLBACK_COLOUR,
    PairResult,
    _registration_failure,
    estimate_homographies,
    render_preview,
    run_homography,
)
from omnimatte.io import load_json, write_frames
from omnimatte.logs import get_logger
from omnimatte.synthetic.footage import footage_clip

WIDTH, HEIGHT = 320, 192
SCENE_W, SCENE_H = 900, 600


def make_scene(seed: int, width: int = SCENE_W, height: int = SCENE_H) -> np.ndarray:
    """A textured RGB image full of corners: random rectangles, discs and lines."""
    rng = np.random.default_rng(seed)
    scene = np.full((height, width, 3), 110, dtype=np.uint8)
    for _ in range(width * height // 900):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(scene, (x, y), (x + int(rng.integers(4, 40)), y + int(rng.integers(4, 40))), colour, -1)
        elif kind == 1:
            cv2.circle(scene, (x, y), int(rng.integers(3, 18)), colour, -1)
        else:
            cv2.line(scene, (x, y), (x + int(rng.integers(-40, 40)), y + int(rng.integers(-40, 40))), colour, 2)
    return cv2.GaussianBlur(scene, (0, 0), 0.7)


def camera(t: int) -> np.ndarray:
    """True frame->scene map of frame t: pan right and down, slight rotation and zoom."""
    angle = np.deg2rad(0.4 * t)
    scale = 1.0 + 0.004 * t
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]) * [[scale], [scale], [1]]
    centre = np.array([[1, 0, -WIDTH / 2], [0, 1, -HEIGHT / 2], [0, 0, 1]])
    position = np.array([[1, 0, 300 + 7.0 * t], [0, 1, 280 + 2.5 * t], [0, 0, 1]])
    return position @ rot @ centre


def film(scene: np.ndarray, num_frames: int) -> np.ndarray:
    """Frames (T,H,W,3) with frame_t(p) = scene(camera(t) p)."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return np.stack([cv2.warpPerspective(scene, camera(t), (WIDTH, HEIGHT), flags=flags) for t in range(num_frames)])


def motion_error(homographies: np.ndarray, frames: list[int]) -> float:
    """Largest distance (px) between recovered and true frame t -> frame 0 positions over a grid of pixels."""
    xs, ys = np.meshgrid(np.linspace(0, WIDTH, 6), np.linspace(0, HEIGHT, 5))
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1)
    worst = 0.0
    to_reference = np.linalg.inv(homographies[0])
    for t in frames:
        truth = np.linalg.inv(camera(0)) @ camera(t)
        got = to_reference @ homographies[t]
        a = points @ truth.T
        b = points @ got.T
        worst = max(worst, float(np.abs(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:]).max()))
    return worst


def add_moving_object(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paste a big (~30% of the frame), blocky-textured patch moving against the camera; return frames and masks.

    Its hard-edged blocks give more and stronger ORB corners than the background, so
    unmasked RANSAC follows the object rather than the camera.
    """
    rng = np.random.default_rng(5)
    patch_w, patch_h = 150, 120
    blocks = rng.integers(0, 256, (patch_h // 6, patch_w // 6, 3)).astype(np.uint8)
    patch = cv2.resize(blocks, (patch_w, patch_h), interpolation=cv2.INTER_NEAREST)
    frames = frames.copy()
    masks = np.zeros(frames.shape[:3], dtype=np.uint8)
    for t in range(len(frames)):
        x, y = 150 - 10 * t, 40 + 3 * t
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + patch_w, WIDTH), min(y + patch_h, HEIGHT)
        if x1 <= x0 or y1 <= y0:  # it has left the frame
            continue
        frames[t, y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
        masks[t, y0:y1, x0:x1] = 255
    return frames, masks


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return make_scene(seed=1)


@pytest.fixture
def stage_log(caplog: pytest.LogCaptureFixture):
    """Capture the stage's information and warnings even if the package logger stops propagating (setup_logging)."""
    logger = get_logger("homography")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    caplog.set_level(logging.INFO, logger=logger.name)
    yield caplog
    logger.removeHandler(caplog.handler)


def run(tmp_path: Path, frames: np.ndarray, masks: dict[str, np.ndarray] | None = None, **kwargs) -> dict:
    write_frames(tmp_path / "frames", frames)
    masks_dir = None
    if masks is not None:
        masks_dir = tmp_path / "masks"
        for name, stack in masks.items():
            write_frames(masks_dir / name, stack)
    return run_homography("clip", tmp_path / "frames", masks_dir, tmp_path / "homography", tmp_path / "preview.mp4", **kwargs)


def test_recovers_known_camera_motion(tmp_path: Path, scene: np.ndarray) -> None:
    frames = film(scene, 14)
    info = run(tmp_path, frames)
    homographies = load_camera("homography", "clip", HomographyFiles(tmp_path / "homography")).homographies

    assert info["failed_pairs"] == []
    assert min(info["inliers"]) >= 50
    assert motion_error(homographies, list(range(14))) < 1.0
    # The canvas covers the union of the frames: the pan is 13*7=91 px right, 13*2.5 px down, plus rotation.
    assert WIDTH + 91 <= info["width"] <= WIDTH + 91 + 60
    assert HEIGHT + 32 <= info["height"] <= HEIGHT + 32 + 60
    assert info["width"] % 16 == 0 and info["height"] % 16 == 0
    # Every frame lands inside the canvas.
    coords = canvas_coordinates(homographies, HEIGHT, WIDTH)
    assert coords.shape == (14, HEIGHT, WIDTH, 2)
    assert coords.min() >= -1e-6
    assert coords[..., 0].max() <= info["width"] and coords[..., 1].max() <= info["height"]


def test_masks_keep_a_moving_object_out_of_the_estimate(tmp_path: Path, scene: np.ndarray) -> None:
    frames, masks = add_moving_object(film(scene, 10))

    # Without masks the object's own motion wins ...
    unmasked, _ = estimate_homographies("clip", frames, None)
    assert motion_error(unmasked, list(range(10))) > 20.0

    # ... with them the camera motion is recovered.
    info = run(tmp_path, frames, {"object": masks})
    homographies = load_camera("homography", "clip", HomographyFiles(tmp_path / "homography")).homographies
    assert info["failed_pairs"] == []
    assert motion_error(homographies, list(range(10))) < 1.0


def test_featureless_frame_falls_back_to_neighbour_motion(tmp_path: Path, scene: np.ndarray, stage_log) -> None:
    frames = film(scene, 12)
    frames[5] = 128
    info = run(tmp_path, frames)
    homographies = load_camera("homography", "clip", HomographyFiles(tmp_path / "homography")).homographies

    assert info["failed_pairs"] == [4, 5]
    assert 5 in info["fallback_frames"]
    assert np.all(np.isfinite(homographies))
    messages = [r.getMessage() for r in stage_log.records if r.levelno == logging.WARNING]
    assert any("frame 5 " in m and "00005.png" in m for m in messages), messages
    # A blank frame shows nothing to check the stand-in motion against: said so, and null in canvas.json.
    assert any("frame 5 " in m and "cannot be checked" in m for m in messages), messages
    assert info["fallback_correlation"] == [None] and info["registered_correlation"] > 0.95
    # Frame 6 follows a failed pair but is registered directly to its keyframe: said as information, not warned.
    assert 6 in info["direct_frames"]
    assert not any("frame 6 " in m for m in messages), messages
    assert any("frame 6 " in r.getMessage() and "keyframe" in r.getMessage() for r in stage_log.records
               if r.levelno == logging.INFO)
    # The blank frame is placed by its neighbour's motion (close to the truth for a steady pan) ...
    assert motion_error(homographies, [5]) < 5.0
    # ... and the frames after it are registered directly across the gap, so they stay right.
    assert info["bridged"] == [[4, 6]]
    assert motion_error(homographies, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]) < 1.0
    assert info["width"] < 2 * WIDTH and info["height"] < 2 * HEIGHT


def test_how_well_a_neighbours_motion_fits_the_frame_it_places_is_measured(stage_log) -> None:
    """A frame of another scene (a cut) in a pan: neither its features nor a dense alignment register it, so it takes
    its neighbour's motion, which aligns it onto the frame before no better than chance: the warning and canvas.json
    say so beside what the registered pairs reach."""
    frames = film(make_scene(1), 10)
    frames[5] = film(make_scene(7), 10)[5]
    _, info = estimate_homographies("clip", frames)
    assert info["fallback_frames"] == [5]
    assert abs(info["fallback_correlation"][0]) < 0.1 and info["registered_correlation"] > 0.95
    warned = " ".join(r.getMessage() for r in stage_log.records if r.levelno == logging.WARNING)
    assert re.search(r"frame 5 .*using the motion of pair \d->\d, which aligns it onto frame 4 to a correlation of "
                     r"-?0\.0\d \(the registered pairs: median (0\.9\d|1\.00)\)", warned), warned


def test_fallback_without_bridge_uses_neighbour_motion(scene: np.ndarray, stage_log) -> None:
    frames = film(scene, 8)
    frames[7] = 128  # the last pair fails and there is no later frame to bridge to
    homographies, info = estimate_homographies("clip", frames)
    assert info["failed_pairs"] == [6]
    assert info["fallback_frames"] == [7] and info["bridged"] == []
    assert motion_error(homographies, [7]) < 2.0
    assert any("pair 5->6" in r.getMessage() for r in stage_log.records)


def test_a_still_camera_stays_still_and_a_pan_does_not_drift(scene: np.ndarray) -> None:
    """Every frame is registered directly to a keyframe, not only chained pair to pair: a still camera under noise
    stays at the identity to within 0.1 px at the corners, and a pan comes out more exact than the chain."""
    rng = np.random.default_rng(4)
    still = np.repeat(film(scene, 1), 20, axis=0).astype(np.float32) + rng.normal(0, 2.0, (20, HEIGHT, WIDTH, 3))
    homographies, info = estimate_homographies("clip", np.clip(np.rint(still), 0, 255).astype(np.uint8))
    assert info["keyframes"] == [0] and info["direct_frames"] == list(range(2, 20))
    assert still_motion(homographies) < 0.1
    pan = film(scene, 24)
    noisy = np.clip(np.rint(pan.astype(np.float32) + rng.normal(0, 2.0, pan.shape)), 0, 255).astype(np.uint8)
    anchored, info = estimate_homographies("clip", noisy)
    assert len(info["keyframes"]) >= 2 and info["direct_frames"]
    assert motion_error(anchored, list(range(24))) < 0.5


def still_motion(homographies: np.ndarray) -> float:
    """The largest move (px) of a frame corner from frame 0's place, over the frames."""
    corners = np.array([[0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]], np.float64).reshape(-1, 1, 2)
    return max(float(np.abs(cv2.perspectiveTransform(corners, np.linalg.solve(homographies[0], h)) - corners).max())
               for h in homographies)


@pytest.mark.parametrize("trait", ["clean", "parallax", "unmasked_mover"])
def test_what_the_camera_does_not_move_does_not_pull_the_registration(trait: str) -> None:
    """A pole sliding by under parallax and a second object nobody masked move unlike the ground: left out of the
    dense alignment once it has found the ground, they leave the registration within half a pixel of the camera the
    clip was filmed with at every frame's corners (pulled by them, ECC drifted by up to 9 px)."""
    clip = footage_clip(trait, "dog", 16, 192, 112)
    objects = np.any([mask > 127 for mask in clip.masks.values()], axis=0)
    homographies, _ = estimate_homographies("clip", clip.frames, objects)
    truth = clip.true_camera().homographies
    corners = np.array([[0, 0], [192, 0], [192, 112], [0, 112]], np.float64).reshape(-1, 1, 2)
    error = max(float(np.linalg.norm(cv2.perspectiveTransform(corners, np.linalg.solve(homographies[0], found))
                                     - cv2.perspectiveTransform(corners, np.linalg.solve(truth[0], true)), axis=-1).max())
                for found, true in zip(homographies, truth))
    assert error < 0.6


def low_texture_scene(seed: int) -> np.ndarray:
    """A scene with no corners: smooth grey blobs of low contrast (a plain wall, a floor), too few ORB features."""
    base = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, (SCENE_H, SCENE_W)).astype(np.float32), (0, 0), 6)
    return np.repeat(np.clip(120 + 12 * base / base.std(), 0, 255)[..., None], 3, axis=2).astype(np.uint8)


def with_noise(frames: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 2.0, frames.shape)
    return np.clip(np.rint(frames.astype(np.float32) + noise), 0, 255).astype(np.uint8)


def test_a_low_texture_clip_is_registered_by_dense_alignment(tmp_path: Path, stage_log) -> None:
    """Too few features in every pair: each is registered by dense alignment of the background, checked against a
    direct registration across it and a neighbour, and frames are placed on their keyframe densely too, so a pan
    stays within half a pixel and a still camera within a tenth."""
    frames = with_noise(film(low_texture_scene(3), 10), 3)
    info = run(tmp_path, frames)
    homographies = load_camera("homography", "clip", HomographyFiles(tmp_path / "homography")).homographies
    assert info["failed_pairs"] == [] and info["dense_pairs"] == list(range(9))
    assert max(info["inliers"]) == 0  # no pair had features enough
    assert motion_error(homographies, list(range(10))) < 0.5
    assert any("pair 0->1 registered by dense alignment" in r.getMessage() and "feature matches" in r.getMessage()
               for r in stage_log.records if r.levelno == logging.INFO)
    still = with_noise(np.repeat(film(low_texture_scene(3), 1), 20, axis=0), 4)
    homographies, info = estimate_homographies("clip", still)
    assert info["dense_pairs"] == list(range(19)) and info["direct_frames"] == list(range(2, 20))
    assert still_motion(homographies) < 0.1


def test_frames_of_noise_alone_are_refused_after_dense_alignment_too(tmp_path: Path) -> None:
    """Nothing but noise in every frame: neither features nor a dense alignment that a second registration bears out."""
    frames = np.random.default_rng(6).integers(88, 113, (8, HEIGHT, WIDTH, 3)).astype(np.uint8)
    with pytest.raises(StageError, match=r"too few features to register \(nor does a dense alignment hold\)") as error:
        run(tmp_path, frames)
    assert "7 of 7 pairs failed" in str(error.value) and "dense alignment" in str(error.value).split("e.g.")[1]
    assert not (tmp_path / "homography" / "homographies.npy").exists()


def test_a_dense_alignment_is_taken_only_where_it_matches_the_frames_well(stage_log) -> None:
    """One frame of another low-texture scene (a cut) in a still clip: ECC aligns the pair into it at a chance optimum
    (a correlation under homography.dense_min_correlation) and finds nothing out of it, so both pairs stay failed and say why; the cut
    frame takes its neighbour's motion (no motion, here) and the rest stay still."""
    frames = with_noise(np.repeat(film(low_texture_scene(3), 1), 10, axis=0), 5)
    frames[5] = with_noise(film(low_texture_scene(8), 1), 6)[0]
    homographies, info = estimate_homographies("clip", frames)
    assert info["failed_pairs"] == [4, 5] and info["dense_pairs"] == [0, 1, 2, 3, 6, 7, 8]
    assert still_motion(homographies) < 0.1
    warned = " ".join(r.getMessage() for r in stage_log.records if r.levelno == logging.WARNING)
    assert re.search(r"registration 4->5 failed: only \d+ feature matches \(need 15\); dense alignment matched it too poorly to trust", warned)


def test_mostly_featureless_clip_is_an_error(tmp_path: Path, scene: np.ndarray) -> None:
    frames = film(scene, 8)
    frames[2:] = 128
    with pytest.raises(StageError, match="too few features") as error:
        run(tmp_path, frames)
    assert "clip" in str(error.value) and "6 of 7 pairs failed" in str(error.value)
    assert not (tmp_path / "homography" / "homographies.npy").exists()


@pytest.mark.parametrize(
    "reasons, headline",
    [
        (["the homography has implausibly strong perspective"] * 5,
         "the motion found between frames is not a plausible camera motion: 5 of 6 pairs failed"),
        (["only 3 feature matches (need 15)"] * 5,
         "frames have too few features to register (nor does a dense alignment hold): 5 of 6 pairs failed"),
        (["only 3 feature matches (need 15)"] * 2 + ["the homography has implausibly strong perspective"] * 3,
         "frames cannot be registered: 2 pair(s) with too few features (nor a dense alignment that holds), 3 with "
         "implausible camera motion"),
    ],
)
def test_registration_failure_headline_matches_the_listed_reasons(reasons, headline):
    results = [PairResult(None, 40, reason) for reason in reasons] + [PairResult(np.eye(3), 40)]
    error = _registration_failure("clip", results, list(range(len(reasons))), 0.5, upscale=1.0)
    # e.g. "[homography] sample 'clip': the motion found between frames is not a plausible camera motion: 5 of 6 pairs
    #  failed (more than 50% allowed), e.g. 0->1: the homography has implausibly strong perspective; ..."
    assert headline in str(error)
    if headline.startswith("frames have too few features"):
        assert "implausibly" not in str(error)
    else:
        assert "implausibly strong perspective" in str(error)
    assert "upscaled" not in str(error)


def test_registration_failure_of_upscaled_frames_names_the_upscale(tmp_path: Path, scene: np.ndarray) -> None:
    frames = film(scene, 8)
    frames[2:] = 128
    with pytest.raises(StageError) as error:
        estimate_homographies("tiny", frames, upscale=4.8)
    # "fix: the frames are the source upscaled 4.8x, which adds blur, not detail: set frames.width near the source
    #  video's width; also ..."
    assert "the frames are the source upscaled 4.8x" in error.value.fix and "frames.width" in error.value.fix


def test_outputs_are_written(tmp_path: Path, scene: np.ndarray) -> None:
    frames = film(scene, 6)
    info = run(tmp_path, frames, fps=12.0)
    out = tmp_path / "homography"

    homographies = np.load(out / "homographies.npy")
    assert homographies.shape == (6, 3, 3) and homographies.dtype == np.float64
    loaded = load_camera("homography", "clip", HomographyFiles(out)).homographies
    canvas = load_json(HomographyFiles(out).canvas)
    assert canvas == info
    for key in ("width", "height", "frame_width", "frame_height", "num_frames", "failed_pairs", "dense_pairs", "inliers",
                "reference_frame"):
        assert key in canvas
    assert (canvas["frame_width"], canvas["frame_height"], canvas["num_frames"], canvas["reference_frame"]) == (WIDTH, HEIGHT, 6, 0)
    assert len(canvas["inliers"]) == 5
    # Frame 0 is only shifted into the canvas.
    np.testing.assert_allclose(loaded[0][:2, :2], np.eye(2), atol=1e-12)
    assert (tmp_path / "preview.mp4").stat().st_size > 1000
    assert not list(out.glob(".*tmp*"))

    preview = list(render_preview(frames, loaded, canvas, "clip"))
    assert len(preview) == 6 and preview[0].shape[1] == canvas["width"]
    # A frame whose pair dense alignment registered is outlined in its colour, one placed by a neighbour in another.
    marked = list(render_preview(frames, loaded, {**canvas, "dense_pairs": [2], "fallback_frames": [4]}, "clip"))

    def shows(image: np.ndarray, colour: tuple[int, int, int]) -> bool:
        return bool((np.abs(image.astype(int) - colour).max(-1) < 8).sum() > 100)

    assert shows(marked[3], DENSE_COLOUR) and shows(marked[4], FALLBACK_COLOUR)
    assert not any(shows(marked[t], DENSE_COLOUR) or shows(marked[t], FALLBACK_COLOUR) for t in (0, 1, 2, 5))


def test_single_frame_is_identity(tmp_path: Path, scene: np.ndarray) -> None:
    info = run(tmp_path, film(scene, 1))
    homographies = load_camera("homography", "clip", HomographyFiles(tmp_path / "homography")).homographies
    assert info["failed_pairs"] == [] and info["inliers"] == []
    np.testing.assert_allclose(homographies[0], np.eye(3))
    assert (info["width"], info["height"]) == (WIDTH, HEIGHT)


def test_bad_inputs_are_stage_errors(tmp_path: Path, scene: np.ndarray) -> None:
    with pytest.raises(StageError, match="no PNG frames"):
        run_homography("clip", tmp_path / "missing", None, tmp_path / "out", tmp_path / "p.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StageError, match="no PNG frames"):
        run_homography("clip", tmp_path / "empty", None, tmp_path / "out", tmp_path / "p.mp4")

    frames = film(scene, 3)
    small_masks = np.zeros((3, HEIGHT // 2, WIDTH // 2), dtype=np.uint8)
    with pytest.raises(StageError, match="masks of 'person'"):
        run(tmp_path / "a", frames, {"person": small_masks})
    with pytest.raises(StageError, match="does not exist"):
        run_homography("clip", tmp_path / "a" / "frames", tmp_path / "nomasks", tmp_path / "out", tmp_path / "p.mp4")

    (tmp_path / "a" / "frames" / "00001.png").write_bytes(b"not a png")
    with pytest.raises(StageError, match="cannot read the frames"):
        run_homography("clip", tmp_path / "a" / "frames", None, tmp_path / "out", tmp_path / "p.mp4")
