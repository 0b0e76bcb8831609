"""The rendered suite: ground truth from renders that share a seed, on tiny scenes with known answers; the
coarse masks; the cache's key; a tiny clip of the suite rendered through the same code as the suite's;
removal PSNR; the benchmark command on a tiny setting, and a clip a stage refuses."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from omnimatte.io import read_frames, read_png, read_video
from omnimatte.rendered import SCENES, Body, CameraPath, Filming, Floor, Lighting, Scene, load_rendered_clip
from omnimatte.rendered import cache as cache_module
from omnimatte.rendered import suite as suite_module
from omnimatte.rendered.cache import cache_key, clip_folder, ensure_clips, is_cached
from omnimatte.rendered.clip import check_layer_order
from omnimatte.rendered.coarse_masks import coarse_masks, signed_distance
from omnimatte.rendered.film import develop, quantize
from omnimatte.rendered.ground_truth import least_alpha, object_layer
from omnimatte.rendered.removal import remove_layer, removal_scores
from omnimatte.rendered.renderer import SceneRenderer, renderer_version
from omnimatte.rendered.suite import RENDERED, run_rendered_suite
from tests.helpers import REPO

SMALL_FLOOR = Floor(texture="tiles", extent=8.0, texels=256)
TINY = Filming(width=64, height=48, n_frames=3, spp=16, max_depth=2)


def test_least_alpha_over_black_and_white_and_the_effect_of_lone_pixels():
    plate = np.full((1, 3, 3), 0.5)
    image = np.array([[[0.25, 0.25, 0.25], [0.5, 0.5, 0.75], [0.5, 0.5, 0.5]]])
    assert least_alpha(image, plate).tolist() == [[0.5, 0.5, 0.0]]  # half way to black; half way to white
    plate = np.full((21, 21, 3), 0.5)
    speckle = plate.copy()
    speckle[10, 10] = 0.4  # one path that grazed the object: Monte Carlo noise, averaged away
    assert object_layer(speckle, plate, np.zeros((21, 21)))[1].max() == 0
    shadow = plate * 0.5  # an even shadow: half the light taken, in black
    rgba, effect = object_layer(shadow, plate, np.zeros((21, 21)))
    assert np.allclose(effect, 0.5) and np.allclose(rgba[..., 3], 0.5) and np.allclose(rgba[..., :3], 0)


def test_an_object_that_casts_no_visible_shadow_has_no_effect_and_untouched_pixels_are_identical():
    """Sun straight down, no sky, direct light only: a cube's shadow lies under it, so outside the cube the
    frame is the plate bit for bit, its layer is its coverage and nothing else."""
    scene = Scene("no_shadow", "test", CameraPath((0.0, 3.0, 3.0), (0.0, 0.0, 0.0), fov=50.0),
                  (Body("cube", "cube", (0.8, 0.3, 0.2), (0.0, 0.0), (0.0, 0.0), 0.8),), floor=SMALL_FLOOR,
                  lighting=Lighting(elevation=90.0, angular_diameter=0.5, sky=(0.0, 0.0, 0.0)), filming=TINY)
    renderer = SceneRenderer(scene)
    frame = quantize(develop(renderer.render(1, ["cube"]), 1.0))
    plate = quantize(develop(renderer.render(1, []), 1.0))
    coverage = renderer.coverage(1, ["cube"], [["cube"]])[..., 0]
    outside = coverage == 0
    assert 0.05 < (~outside).mean() < 0.6  # the cube is in view
    assert np.array_equal(frame[outside], plate[outside])
    assert not np.array_equal(frame[~outside], plate[~outside])
    rgba, effect = object_layer(frame / 255.0, plate / 255.0, coverage)
    assert effect.max() == 0
    assert np.array_equal(rgba[..., 3] > 0, ~outside)
    assert np.all(rgba[..., 3] >= coverage)


def _floating_ball(sky) -> Scene:
    """A ball 1 m above the floor at frame 1 of 3 (its one bounce's top), the sun straight down."""
    return Scene("shadow", "test", CameraPath((0.0, 3.5, 3.5), (0.0, 0.3, 0.0), fov=55.0),
                 (Body("ball", "ball", (0.2, 0.4, 0.8), (0.0, 0.0), (0.0, 0.0), 1.6, bounces=1, bounce_height=1.0),),
                 floor=SMALL_FLOOR, lighting=Lighting(elevation=90.0, angular_diameter=0.5, sky=sky),
                 filming=dataclasses.replace(TINY, width=160, height=120))


@pytest.mark.parametrize("sky", [(0.0, 0.0, 0.0), (0.2, 0.25, 0.35)])
def test_a_shadows_least_alpha_is_the_darkening_the_renderer_computed(sky):
    """Inside the umbra, the layer's alpha is the share of light the ball takes from the floor, as the tracer
    computed it: all of it without a sky (in black); with a blue sky, what the sun gave (in the sky's tint)."""
    scene = _floating_ball(sky)
    renderer = SceneRenderer(scene)
    alone_linear, plate_linear = renderer.render(1, ["ball"]), renderer.render(1, [])
    coverage = renderer.coverage(1, ["ball"], [["ball"]])[..., 0]
    alone, plate = quantize(develop(alone_linear, 1.0)) / 255.0, quantize(develop(plate_linear, 1.0)) / 255.0
    rgba, effect = object_layer(alone, plate, coverage)
    # The tracer's darkening, pixel by pixel (noisy where the sky lights the umbra), and the umbra: beyond the
    # effect's smoothing (3 sigma, 6 px) inside the shadow (a disk of the ball's radius, 0.8 m), on lit ground (a
    # dark joint between tiles has little to lose).
    darkening = (1.0 - develop(alone_linear, 1.0) / np.maximum(develop(plate_linear, 1.0), 1e-6)).max(axis=2)
    umbra = (cv2.GaussianBlur(darkening, (0, 0), 2.0) > 0.3) & (coverage == 0)
    umbra = cv2.erode(umbra.astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool) & (plate.min(axis=2) > 0.1)
    assert umbra.sum() >= 100
    assert abs(effect[umbra].mean() - darkening[umbra].mean()) < 0.02
    colour = rgba[umbra][:, :3]
    if not any(sky):  # the sun alone lit the floor: the ball takes all of it, and the shadow is black
        assert effect[umbra].min() > 0.98 and colour.max() < 0.02
    else:  # the sky still lights the umbra: a part of the light is left, bluish
        assert 0.3 < effect[umbra].mean() < 0.9 and colour[:, 2].mean() > colour[:, 0].mean() + 0.05
    # Beyond the smoothing's reach (6 px) of the ball and of anything it darkens by 1 %, nothing.
    touched = ((cv2.GaussianBlur(darkening, (0, 0), 2.0) > 0.01) | (coverage > 0)).astype(np.uint8)
    away = cv2.dilate(touched, np.ones((13, 13), np.uint8)) == 0
    assert away.mean() > 0.2 and effect[away].max() == 0


def test_coverage_is_the_share_of_the_frames_own_samples():
    """A black ball against a uniform sky: each pixel is the sky times the share of its samples that missed
    the ball, so the coverage pass, which traces the same first rays, gives exactly 1 - pixel / sky."""
    scene = Scene("silhouette", "test", CameraPath((0.0, 1.0, 4.0), (0.0, 1.0, 0.0), fov=40.0),
                  (Body("ball", "ball", (0.0, 0.0, 0.0), (0.0, 0.0), (0.0, 0.0), 1.0, bounces=1, bounce_height=0.5),),
                  floor=SMALL_FLOOR, lighting=Lighting(irradiance=(0.0, 0.0, 0.0), sky=(0.5, 0.5, 0.5)),
                  filming=TINY)
    renderer = SceneRenderer(scene)
    image = renderer.render(1, ["ball"])[..., 0]
    coverage = renderer.coverage(1, ["ball"], [["ball"]])[..., 0]
    top = slice(0, TINY.height // 2 - 2)  # above the horizon: only the sky and the ball
    edge = (coverage[top] > 0) & (coverage[top] < 1)
    assert edge.sum() > 10 and (coverage[top] == 1).sum() > 20
    assert np.abs(coverage[top] - (1.0 - image[top] / 0.5)).max() < 1e-5
    assert set(np.unique(np.round(coverage[top] * TINY.spp, 4))) <= set(range(TINY.spp + 1))


def test_coarse_masks_grow_wobble_and_repeat():
    yy, xx = np.mgrid[:256, :256]
    disk = ((yy - 128) ** 2 + (xx - 128) ** 2 <= 40**2).astype(np.float32)
    visible = np.stack([disk] * 6)
    filming = Filming(mask_grow=3.0, mask_wobble=1.5, mask_shift=1.0)
    masks = coarse_masks(visible, filming, 0)
    assert masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 255}
    radii = np.sqrt((masks > 0).sum(axis=(1, 2)) / np.pi)
    assert np.all(np.abs(radii - 43) < 2.0)  # grown by about 3 px
    assert not np.array_equal(masks[0], masks[1])  # it wobbles from frame to frame
    assert np.array_equal(masks, coarse_masks(visible, filming, 0))  # the same on every render
    assert not np.array_equal(masks, coarse_masks(visible, filming, 1))
    outline = signed_distance(masks[0] > 0) == 1  # the mask's own edge pixels
    distance_to_disk = -signed_distance(disk > 0)[outline]
    assert distance_to_disk.std() > 0.5  # blobby, not a clean circle
    assert not coarse_masks(np.zeros((2, 32, 32), np.float32), filming, 0).any()


def test_a_scene_whose_bodies_change_depth_order_is_refused():
    bad = Scene("crossing", "test", CameraPath((0.0, 3.0, 5.0), (0.0, 0.0, 0.0)),
                (Body("a", "ball", (1, 0, 0), (0.0, -2.0), (0.0, 2.0), 0.4), Body("b", "ball", (0, 0, 1), (1.0, 0.0),
                                                                                 (1.0, 0.0), 0.4)), filming=TINY)
    with pytest.raises(ValueError, match="not back to front"):
        check_layer_order(bad)
    for scene in SCENES.values():
        check_layer_order(scene)


def test_the_cache_key_follows_the_scene_and_the_renderer():
    scene = SCENES["pan_shadow"]
    key = cache_key(scene)
    assert key == cache_key(SCENES["pan_shadow"]) and len(key) == 16
    assert cache_key(scene.filmed(spp=8)) != key
    assert cache_key(dataclasses.replace(scene, stresses="reworded")) == key
    assert cache_key(dataclasses.replace(scene, lighting=Lighting(elevation=20.0))) != key
    assert cache_key(scene, renderer="mitsuba 0.0.0 scalar_rgb") != key
    assert renderer_version().startswith("mitsuba 3.")
    assert clip_folder(Path("cache"), scene) == Path("cache") / f"pan_shadow-{key}"
    assert len(set(map(cache_key, SCENES.values()))) == len(SCENES)


def test_the_suite_has_a_scene_for_each_trait():
    scenes = SCENES.values()
    assert len(SCENES) >= 9
    assert any(s.camera.still for s in scenes)
    assert any(s.camera.translates and s.props for s in scenes)
    assert any(s.pond is not None for s in scenes)
    assert any(s.floor.gloss > 0 for s in scenes) and any(s.floor.texture == "dark" for s in scenes)
    assert any(s.filming.flicker > 0 for s in scenes) and any(s.filming.n_frames >= 200 for s in scenes)
    assert any(len(s.bodies) >= 3 for s in scenes)
    assert all(s.has_unexplained == (s.name in ("parallax", "pond")) for s in scenes)


def test_a_tiny_clip_renders_through_the_suites_code_and_is_reused(tmp_path: Path, monkeypatch):
    """The parallax scene at 64x36, 3 frames: the clip folder, the unexplained map, the input video, the masks
    and the ground truth; a second call takes it from the cache."""
    scene = dataclasses.replace(SCENES["parallax"], floor=SMALL_FLOOR).filmed(width=64, height=36, n_frames=3)
    folders = ensure_clips([scene], tmp_path, progress=False)
    folder = folders["parallax"]
    assert folder == clip_folder(tmp_path, scene) and is_cached(folder, cache_key(scene))
    rendered = load_rendered_clip(folder)
    clip = rendered.clip
    assert clip.frames.shape == (3, 36, 64, 3) and clip.object_names == ["cube"]
    assert len(read_video(folder / "video.mp4")) == 3
    lossless = read_frames(folder / "gt" / "frames")
    assert 0 < np.abs(lossless.astype(int) - clip.frames).mean() < 8  # the H.264 round trip, not another clip
    assert rendered.unexplained.max() > 200  # the poles under a translating camera
    assert np.array_equal(rendered.without["cube"], clip.background)  # one object: removing it gives the plate
    coverage = read_frames(folder / "gt" / "coverage" / "cube", mode="gray")
    same = (lossless == clip.background).all(axis=-1)
    assert same[coverage == 0].mean() > 0.5 and not same[coverage == 255].any()  # the plate shares the frame's seed
    assert (clip.masks["cube"] > 0)[coverage > 200].mean() > 0.95
    assert rendered.info["renders"] == 2 * 3 and rendered.info["key"] == cache_key(scene)

    def render_again(*args, **kwargs):
        raise AssertionError("a cached clip was rendered again")

    monkeypatch.setattr(cache_module, "render_scene", render_again)
    assert ensure_clips([scene], tmp_path, progress=False) == folders


def test_removal_scores_the_layers_against_the_render_without_the_object():
    """A shadowed plate: the true layer removes the shadow exactly; a mask-only removal keeps it; the median
    removal (the median plate with the other objects' masks cut from the frame) removes it too."""
    plate = np.full((2, 16, 16, 3), 120, np.uint8)
    frames = plate.copy()
    frames[:, 4:8, 4:8] = 200  # the object
    frames[:, 8:12, 4:12] = 60  # its shadow
    layer = np.zeros((2, 16, 16, 4), np.uint8)
    layer[:, 4:8, 4:8] = (200, 200, 200, 255)
    layer[:, 8:12, 4:12, 3] = 128  # half the light taken, in black
    masks = {"thing": np.zeros((2, 16, 16), np.uint8)}
    masks["thing"][:, 3:9, 3:9] = 255
    scores = removal_scores(plate, {"thing": layer}, ["thing"], {"thing": plate}, frames, masks, plate)
    thing = scores["objects"]["thing"]
    assert thing["removal_psnr"] > 90 and thing["median_removal_psnr"] > 90
    assert thing["mask_removal_psnr"] < 25  # the shadow stays
    assert np.array_equal(remove_layer(plate, {"thing": layer}, ["thing"], "thing"), plate)
    assert scores["summary"]["removal_psnr"] == thing["removal_psnr"]


def test_the_rendered_suite_command_on_a_tiny_setting(tmp_path: Path):
    out, cache = tmp_path / "bench", tmp_path / "cache"
    command = [sys.executable, "-m", "omnimatte", "benchmark", "--suite", "rendered", "--presets", "pan_shadow",
               "--frames", "6", "--width", "224", "--height", "128", "--steps", "2", "--eval-every", "1",
               "--settings", json.dumps({"nf": 8, "batch_size": 2}), "--flow-weights", "none", "--threads", "2",
               "--render-cache", str(cache), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| pan_shadow | 1 |" in result.stdout
    assert "render pan_shadow" in result.stderr  # the progress bar
    summary = json.loads((out / "benchmark.json").read_text())
    row = summary["results"]["pan_shadow"]["row"]
    for key in ("soft_iou", "effect_recall", "alpha_leak", "background_psnr", "removal_psnr", "reconstruction_psnr",
                "mask_soft_iou", "mask_removal_psnr", "median_background_psnr", "median_removal_psnr"):
        assert row[key] is not None, key
    assert row["median_removal_psnr"] == row["median_background_psnr"]  # one object: removing it leaves the plate
    diagnostics = json.loads((out / "pan_shadow" / "diagnostics.json").read_text())
    assert row["diagnose"] == diagnostics["verdict"] and "unexplained_iou" in row  # pan_shadow: no such region
    assert set(summary["results"]["pan_shadow"]["diagnostics"]) == set(diagnostics["checks"])
    ablations = summary["results"]["pan_shadow"]["render_ablations"]
    assert set(ablations) == {"as_trained", "without_plate_matte", "without_fit_alpha", "without_fill_cores",
                              "without_refine_alpha", "without_claim_effects", "without_fit_shadows", "without_cut_strays",
                              "without_detail_transfer", "without_background_detail"}
    assert ablations["without_detail_transfer"]["reconstruction_psnr"] < ablations["as_trained"]["reconstruction_psnr"]
    metrics = json.loads((out / "pan_shadow" / "metrics.json").read_text())
    assert metrics["removal"]["summary"]["removal_psnr"] == row["removal_psnr"]
    assert read_png(out / "pan_shadow" / "evaluation.png").shape[1] == 4 * 224
    assert read_png(out / "clips.png").shape[:2] == (128, 224)
    with open(out / "ablation.csv") as f:
        assert len(list(csv.DictReader(f))) == len(ablations)
    again = subprocess.run(command + ["--render-only"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert again.returncode == 0 and "from the cache" in again.stderr
    refused = subprocess.run([sys.executable, "-m", "omnimatte", "benchmark", "--suite", "fast", "--render-only"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode != 0 and "rendered suite's" in refused.stderr


def test_a_clip_a_stage_refuses_is_reported_and_the_suite_goes_on(tmp_path: Path, monkeypatch):
    """At 64x36 the floor has too few features for the homography stage: the clip's row says why, the table
    is written all the same, before the next clip runs, so that a run stopped part way keeps it."""
    suite = RENDERED.with_overrides(frames=3, width=64, height=36, steps=1, device="cpu", train={"nf": 8})
    result = run_rendered_suite(suite, tmp_path / "bench", ["dark_floor"], flow_weights="none",
                                cache=tmp_path / "cache")
    row = result["results"]["dark_floor"]["row"]
    assert "too few features" in row["error"]
    assert "dark_floor failed" in (tmp_path / "bench" / "table.md").read_text()
    assert read_png(tmp_path / "bench" / "clips.png").shape[:2] == (36, 64)

    run_clip = suite_module.run_rendered_clip

    def stopped_at_pan_shadow(rendered, *args):
        if rendered.info["scene"] == "pan_shadow":
            raise KeyboardInterrupt
        return run_clip(rendered, *args)

    monkeypatch.setattr(suite_module, "run_rendered_clip", stopped_at_pan_shadow)
    with pytest.raises(KeyboardInterrupt):
        run_rendered_suite(suite, tmp_path / "stopped", ["dark_floor", "pan_shadow"], flow_weights="none",
                           cache=tmp_path / "cache")
    assert "dark_floor failed" in (tmp_path / "stopped" / "table.md").read_text()
    assert set(json.loads((tmp_path / "stopped" / "benchmark.json").read_text())["results"]) == {"dark_floor"}
