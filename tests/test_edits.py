"""The edits on hand-made layers with known answers, and the messages for bad requests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from omnimatte.camera import Camera
from omnimatte.cli import main
from omnimatte.edits import (
    Layers,
    colorpop,
    frozen,
    remove_object,
    replace_background,
    replacement_background,
    retime,
    run_remove,
    run_retime,
    run_stroboscope,
    shifted,
    stroboscope_frames,
    stroboscope_image,
)
from omnimatte.errors import StageError
from omnimatte.io import read_png, read_video, write_png
from tests.helpers import BLUE, H, T, W, Scene, ball_and_box, ball_red, ball_x, colourful_ground, run_snakemake, write_scene


@pytest.fixture
def toy(tmp_path: Path) -> tuple[Scene, Path]:
    scene = ball_and_box()
    return scene, write_scene(scene, tmp_path / "results" / "toy")


def open_layers(root: Path, names: list[str] | None = None) -> Layers:
    return Layers("toy", root / "omnimatte", names or ["ball", "box"])


def red_blobs(image: np.ndarray, ground: np.ndarray) -> int:
    """How many separate patches of the ball's colour (30 in green and blue) an image shows over the ground."""
    ball = (np.abs(image[..., 1:].astype(int) - 30).max(axis=-1) <= 2) & (image[..., 0] >= 150)
    ball &= np.abs(image.astype(int) - ground).max(axis=-1) > 20
    return cv2.connectedComponents(ball.astype(np.uint8))[0] - 1


def test_removal_takes_the_shadow_with_the_object(toy):
    scene, root = toy
    out = np.stack(list(remove_object(open_layers(root), "ball"))).astype(int)
    x = ball_x(3)
    shadow, body = (slice(30, 38), slice(x, x + 12)), (slice(14, 26), slice(x, x + 8))
    assert scene.frames[3][shadow].mean() < scene.background[3][shadow].mean() - 40  # the input has a dark shadow there
    assert np.abs(out[3][shadow] - scene.background[3][shadow]).max() <= 1  # the edit has none
    assert np.abs(out[3][body] - scene.background[3][body]).max() <= 1
    assert (out[:, 10:30, 40:52] == BLUE).all()  # the other object stays
    outside_box = np.ones((H, W), bool)
    outside_box[10:30, 40:52] = False
    assert np.abs(out[:, outside_box] - scene.background[:, outside_box]).max() <= 1


def test_removal_video(toy, tmp_path):
    scene, root = toy
    run_remove(open_layers(root), "box", tmp_path / "remove_box.mp4", fps=24)
    video = read_video(tmp_path / "remove_box.mp4").astype(int)
    assert video.shape == (T, H, W, 3)
    box = (slice(0, 8), slice(12, 28), slice(42, 50))  # before the ball gets there
    assert np.abs(video[box] - scene.background[box]).mean() < 8  # the ground where the box stood
    assert np.abs(scene.frames[box].astype(int) - scene.background[box]).mean() > 40
    assert np.abs(video[5, 16:24, ball_x(5) + 2:ball_x(5) + 6] - (ball_red(5), 30, 30)).mean() < 12


def test_colorpop_is_grey_outside_the_kept_layers_and_coloured_in_them(toy):
    scene, root = toy
    out = np.stack(list(colorpop(open_layers(root), root / "frames", ["ball"]))).astype(int)
    ball_alpha, box_alpha = scene.layers["ball"][..., 3] / 255.0, scene.layers["box"][..., 3] / 255.0
    shown = ball_alpha * (1 - box_alpha)  # the ball's share of each pixel, after the box in front
    outside = shown == 0
    assert (out[..., 0] == out[..., 1])[outside].all() and (out[..., 1] == out[..., 2])[outside].all()
    luma = scene.frames.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert np.abs(out[..., 0][outside] - luma[outside]).max() <= 1
    x = ball_x(3)
    assert np.abs(out[3, 14:26, x:x + 8] - scene.frames[3, 14:26, x:x + 8]).max() <= 1  # the ball in full colour
    shadow = out[3, 30:38, x:x + 12]
    assert (shadow.max(axis=-1) - shadow.min(axis=-1)).mean() > 8  # its half-alpha shadow keeps some colour
    x = ball_x(10)  # the ball is behind the box: the box hides it, so there it is grey
    assert (out[10, 14:26, x:x + 8, 0] == out[10, 14:26, x:x + 8, 2]).all()


def test_colorpop_of_two_objects_keeps_both(toy):
    scene, root = toy
    out = list(colorpop(open_layers(root), root / "frames", ["ball", "box"]))[2]
    assert (out[12:28, 42:50] == BLUE).all()
    assert out[16, ball_x(2) + 2, 0] == ball_red(2)


def test_stroboscope_still_has_one_copy_per_interval_in_time_order(toy):
    scene, root = toy
    layers, camera = open_layers(root), Camera(scene.homographies, scene.canvas_size[::-1])
    still = stroboscope_image(layers, camera, "ball", interval=4, frame=6)
    assert red_blobs(still, scene.background[6]) == 3  # frames 0, 4 and 8
    for source in (0, 4, 8):
        assert still[20, ball_x(source) + 1, 0] == ball_red(source)
        assert still[34, ball_x(source) + 10].mean() < scene.background[6, 34, ball_x(source) + 10].mean() - 40  # its shadow
    assert (still[10:30, 40:52] == BLUE).all()  # the box in front, as on frame 6
    overlapping = stroboscope_image(layers, camera, "ball", interval=1, frame=6)
    assert overlapping[20, ball_x(2) + 5, 0] == ball_red(3)  # where two copies overlap the later one is on top


def test_stroboscope_video_leaves_copies_behind(toy, tmp_path):
    scene, root = toy
    layers, camera = open_layers(root), Camera(scene.homographies, scene.canvas_size[::-1])
    frames = list(stroboscope_frames(layers, camera, "ball", interval=4))
    # the live ball, and the copies from frames 0 and 4 once it has passed them
    assert [red_blobs(frames[t], scene.background[t]) for t in (0, 3, 5, 7)] == [1, 2, 2, 3]
    run_stroboscope(layers, camera, "ball", tmp_path / "s.png", tmp_path / "s.mp4", fps=24, interval=4)
    assert red_blobs(read_png(tmp_path / "s.png"), scene.background[T // 2]) == 3
    assert read_video(tmp_path / "s.mp4").shape == (T, H, W, 3)


def test_shift_and_freeze_move_one_layer_in_time(toy, tmp_path):
    scene, root = toy
    layers, camera = open_layers(root), Camera(scene.homographies, scene.canvas_size[::-1])
    late = list(retime(layers, camera, "ball", shifted(T, 3)))
    for t in (0, 2, 3, 7):
        source = max(t - 3, 0)
        assert late[t][20, ball_x(source) + 1, 0] == ball_red(source), t
        assert np.abs(late[t][34, ball_x(source) + 5].astype(int) - scene.frames[source][34, ball_x(source) + 5]).max() <= 1
        assert red_blobs(late[t], scene.background[t]) == 1
    assert (np.stack(late)[:, 10:30, 40:52] == BLUE).all()  # the box plays as recorded
    still = list(retime(layers, camera, "ball", frozen(5)))
    assert all(frame[20, ball_x(5) + 1, 0] == ball_red(5) and red_blobs(frame, scene.background[0]) == 1 for frame in still)
    with pytest.raises(StageError, match="edits.freeze = 40 is not a frame"):
        run_retime(layers, camera, "ball", tmp_path / "f.mp4", fps=24, freeze=40)


def panning_scene() -> Scene:
    """A post standing still on the ground while the camera pans right 2 px a frame."""
    ground = colourful_ground(H, W + 2 * T, seed=1)
    background = np.stack([ground[:, 2 * t:2 * t + W] for t in range(T)])
    post = np.zeros((T, H, W, 4), np.uint8)
    for t in range(T):
        post[t, 10:40, 40 - 2 * t:46 - 2 * t] = (250, 200, 0, 255)
    homographies = np.stack([np.array([[1, 0, 2 * t], [0, 1, 0], [0, 0, 1]], np.float64) for t in range(T)])
    return Scene(background, {"post": post}, homographies, (W + 2 * T, H))


def test_a_layer_from_another_frame_follows_the_camera(tmp_path):
    scene = panning_scene()
    root = write_scene(scene, tmp_path / "pan")
    layers, camera = Layers("pan", root / "omnimatte", ["post"]), Camera(scene.homographies, scene.canvas_size[::-1])
    frozen_post = np.stack(list(retime(layers, camera, "post", frozen(0))))
    assert np.abs(frozen_post.astype(int) - scene.frames).max() <= 1  # a still object frozen is the object as filmed


def test_replacement_background_color_and_camera_following_image(tmp_path):
    scene = panning_scene()
    root = write_scene(scene, tmp_path / "pan")
    layers, camera = Layers("pan", root / "omnimatte", ["post"]), Camera(scene.homographies, scene.canvas_size[::-1])
    green = np.stack(list(replace_background(layers, replacement_background(layers, camera, color=[0, 177, 64]))))
    assert (green[:, :8] == (0, 177, 64)).all()
    assert (green[3, 10:40, 34:40] == (250, 200, 0)).all()
    picture = colourful_ground(H, W + 2 * T, seed=5)
    write_png(tmp_path / "picture.png", picture)
    follows = np.stack(list(replace_background(
        layers, replacement_background(layers, camera, image_path=tmp_path / "picture.png"))))
    for t in (0, 5):
        assert np.abs(follows[t, :, :20].astype(int) - picture[:, 2 * t:2 * t + 20]).max() <= 1
    fixed = np.stack(list(replace_background(
        layers, replacement_background(layers, camera, image_path=tmp_path / "picture.png", follow_camera=False))))
    assert (fixed[0, :, :20] == fixed[5, :, :20]).all()
    with pytest.raises(StageError, match="does not exist"):
        replacement_background(layers, camera, image_path=tmp_path / "missing.jpg")


def test_shadow_darkens_the_replacement_background(toy):
    scene, root = toy
    layers = open_layers(root)
    camera = Camera(scene.homographies, scene.canvas_size[::-1])
    out = list(replace_background(layers, replacement_background(layers, camera, color=[200, 200, 200])))
    x = ball_x(4)
    assert np.abs(out[4][34, x + 5].astype(int) - 100).max() <= 1  # half-alpha black over grey 200


# ------------------------------------------------------------------- bad requests


def test_unknown_object_lists_the_layers_there_are(toy):
    _, root = toy
    with pytest.raises(StageError, match=r"no layer 'cat'.*has: ball, box"):
        open_layers(root, ["ball", "cat"])
    with pytest.raises(StageError, match=r"no object 'cat' \(the sample's objects: ball, box\)"):
        list(remove_object(open_layers(root), "cat"))


def test_sample_without_layers_says_how_to_make_them(tmp_path):
    with pytest.raises(StageError, match=r"(?s)no layers in .*snakemake --cores 8 results/toy/omnimatte.mp4"):
        Layers("toy", tmp_path / "results" / "toy" / "omnimatte", ["ball"])


def test_cli_reports_a_bad_object_in_its_log(toy, tmp_path):
    _, root = toy
    log = tmp_path / "remove.log"
    code = main(["remove", "--sample", "toy", "--omnimatte", str(root / "omnimatte"), "--objects", "ball,box",
                 "--frames-info", str(root / "frames_info.json"), "--object", "cat", "--out", str(tmp_path / "x.mp4"),
                 "--log", str(log)])
    assert code == 1
    assert "no object 'cat'" in log.read_text() and "ball, box" in log.read_text()
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("results/dog/edits/remove_cat.mp4", ["no object 'cat'", "its objects are: dog"]),
        ("results/dog/edits/colorpop_dog+cat.mp4", ["no object 'cat'", "its objects are: dog"]),
        ("results/cat/edits/stroboscope_dog.png", ["unknown sample 'cat'", "the config has: dog"]),
        ("results/dog/edits/background_beach.mp4", ["no background 'beach'", "the config has: green"]),
    ],
)
def test_bad_targets_stop_before_any_job_listing_what_exists(workdir: Path, target: str, expected: list[str]):
    result = run_snakemake(workdir, "-n", target)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for words in expected:
        assert words in message, (words, message[-2000:])


def test_edit_objects_must_be_the_samples_objects(workdir: Path):
    config = workdir / "config" / "extra.yaml"
    config.write_text("samples: {dog: {demo: dog, video: v.mp4, objects: {dog: {masks: m}}, edit_objects: [cat]}}\n")
    result = run_snakemake(workdir, "-n", "--configfile", str(config), "--", "edits")
    assert result.returncode != 0
    assert "samples.dog.edit_objects: cat not among the sample's objects (dog)" in result.stdout + result.stderr


def test_edits_rule_plans_every_edit_of_every_sample(workdir: Path):
    result = run_snakemake(workdir, "-n", "edits")
    assert result.returncode == 0, result.stderr[-2000:]
    for target in ("remove_dog.mp4", "colorpop_dog.mp4", "stroboscope_dog.png", "stroboscope_dog.mp4",
                   "shift_dog.mp4", "freeze_dog.mp4", "background_green.mp4"):
        assert f"results/dog/edits/{target}" in result.stdout, target
    assert "rule retime:" in result.stdout and "rule shift:" not in result.stdout  # one rule retimes both ways
