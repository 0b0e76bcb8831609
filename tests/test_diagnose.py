"""The diagnose stage: each check on a small clip made to fail it and on one made to pass it, and its outputs.

The clips are presets with one footage trait each (omnimatte/synthetic/footage.py), registered
with the homographies they were filmed with, so that each check is tested on its own and not
through the homography stage; their flow is OpenCV's DIS, as without RAFT's weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from omnimatte.background_fit import FlowFields, fit_background, grow
from omnimatte.camera import Camera
from omnimatte.composite import run_composite
from omnimatte.diagnose import FAIL, OK, WARN, DiagnoseSettings, diagnose, run_checks
from omnimatte.diagnose.benchmark import diagnose_inputs
from omnimatte.diagnose.camera_model import check_camera_model, fallback_fit, unregistered
from omnimatte.diagnose.drawing import outline_flagged
from omnimatte.diagnose.exposure import check_exposure
from omnimatte.diagnose.findings import CheckResult, Finding
from omnimatte.diagnose.inputs import Layers, SampleInputs, read_sample
from omnimatte.diagnose.layers import check_layers, missed_share, reach_zone
from omnimatte.diagnose.masks import check_masks
from omnimatte.diagnose.outputs import read_flags, write_flags
from omnimatte.diagnose.seeds import check_seeds
from omnimatte.errors import StageError
from omnimatte.flow import confidences, dis_flow
from omnimatte.homography import run_homography
from omnimatte.io import read_png, read_video, write_frames
from omnimatte.synthetic.footage import footage_clip
from tests.helpers import REPO, TINY, ball_and_box, run_snakemake, write_config, write_scene
from tests.test_homography import film, make_scene

SETTINGS = DiagnoseSettings()
FRAMES, WIDTH, HEIGHT = 24, 192, 112


@lru_cache(maxsize=None)
def sample(trait: str, preset: str = "dog") -> SampleInputs:
    """A preset's clip with a footage trait, as the diagnose stage reads a sample (cached: read-only)."""
    clip = footage_clip(trait, preset, FRAMES, WIDTH, HEIGHT)
    forward, backward = dis_flow(clip.frames)
    flow = FlowFields(forward, backward, *confidences(forward, backward, 1.0))
    masks = {name: mask > 127 for name, mask in clip.masks.items()}
    return SampleInputs(f"{trait}_{preset}", clip.frames, masks, clip.true_camera(), flow)


@lru_cache(maxsize=None)
def truth(trait: str, preset: str = "dog") -> np.ndarray:
    return footage_clip(trait, preset, FRAMES, WIDTH, HEIGHT).unexplained


@lru_cache(maxsize=None)
def fitted(trait: str, preset: str = "dog"):
    inputs = sample(trait, preset)
    return fit_background(inputs.frames, inputs.camera, inputs.masks, inputs.flow, SETTINGS.background.fit_settings())


def finding(result, name: str, subject: str | None = None):
    return next(f for f in result.findings if f.name == name and (subject is None or f.subject == subject))


def iou(flagged: np.ndarray, true: np.ndarray, free: np.ndarray) -> float:
    true = true & free
    return float((flagged & true).sum() / max((flagged | true).sum(), 1))


# ------------------------------------------------------------------ 1. the camera model


def test_parallax_is_flagged_where_the_pole_stands():
    fit = fitted("parallax")
    result = check_camera_model(sample("parallax"), fit, SETTINGS.camera_model)
    unexplained = finding(result, "unexplained")
    assert unexplained.verdict != OK, unexplained.text
    assert "parallax" in unexplained.text
    assert iou(result.flagged, truth("parallax"), fit.free) >= 0.4
    assert fit.parallax.sum() > fit.misfit.sum()  # told apart from a misregistration


@pytest.mark.parametrize("trait", ["clean", "noise"])
def test_a_clip_the_camera_model_explains_passes(trait: str):
    """Noise and an H.264 round trip are not a broken camera model: thresholds follow the clip's noise."""
    fit = fitted(trait)
    result = check_camera_model(sample(trait), fit, SETTINGS.camera_model)
    assert result.verdict == OK, [f.text for f in result.findings if f.verdict != OK]
    assert fit.noise.mean() > (2.0 if trait == "noise" else 0.0)
    assert result.flagged.mean() < 0.005


def test_the_map_rendering_consults_says_where_the_background_explains_the_frame():
    fit, pole = fitted("parallax"), truth("parallax")
    ground = fit.free & ~pole & ~fit.near & ~fit.unfit
    explained = np.stack([fit.explained(t) for t in range(FRAMES)])
    assert explained[ground].mean() > 0.95 and explained[pole & fit.free].mean() < 0.5
    unexplainable = np.stack([fit.unexplainable(t) for t in range(FRAMES)])
    assert unexplainable[ground].mean() < 0.01 and (unexplainable & pole).sum() > 0.4 * (pole & fit.free).sum()
    assert fit.camera.homographies.shape == (FRAMES, 3, 3) and fit.registration_error.max() < 1.0


def test_drift_of_the_chained_registration_is_measured():
    inputs = sample("clean")
    fit = fitted("clean")
    assert finding(check_camera_model(inputs, fit, SETTINGS.camera_model), "drift").figure < 1.0
    # Each frame's homography a little further rotated and scaled than the last: a chain that drifts.
    step = np.array([[np.cos(0.002) * 1.001, -np.sin(0.002), 0.3], [np.sin(0.002), np.cos(0.002) * 1.001, 0.0],
                     [0.0, 0.0, 1.0]])
    drifting = np.stack([h @ np.linalg.matrix_power(step, t) for t, h in enumerate(inputs.camera.homographies)])
    bad = replace(inputs, camera=Camera(drifting, inputs.camera.canvas_size))
    drift = finding(check_camera_model(bad, fit, SETTINGS.camera_model), "drift")
    assert drift.verdict != OK and drift.figure > SETTINGS.camera_model.drift_warn, drift.text


def test_the_frames_the_homography_stage_could_not_register_are_reported(tmp_path: Path):
    frames = film(make_scene(1), 8)
    frames[5] = 128  # blank: neither features nor a dense alignment register it; its neighbour's motion places it
    write_frames(tmp_path / "frames", frames)
    write_frames(tmp_path / "masks" / "thing", np.zeros(frames.shape[:3], np.uint8))
    run_homography("clip", tmp_path / "frames", tmp_path / "masks", tmp_path / "homography", tmp_path / "preview.mp4")
    inputs = read_sample("clip", tmp_path / "frames", tmp_path / "masks", ["thing"], tmp_path / "homography")
    assert inputs.fallback_frames == (5,) and inputs.dense_pairs == ()
    found = unregistered(inputs, SETTINGS.camera_model)
    assert found.verdict == WARN and found.frames == [5], found.text
    assert "1 of 8 frames could not be registered and were placed by a neighbour's motion (frames 5)" in found.text
    assert "previews/stabilised.mp4" in found.text
    many = unregistered(replace(inputs, fallback_frames=(2, 3, 5), dense_pairs=(0, 1)), SETTINGS.camera_model)
    assert many.verdict == FAIL and "2 pair(s) of frames had too few features" in many.text
    clean = finding(check_camera_model(sample("clean"), fitted("clean"), SETTINGS.camera_model), "unregistered")
    assert clean.verdict == OK and clean.text == "Every frame was registered."
    # The blank frame shares no texture with the one before: its placement cannot be checked, and is said so.
    assert inputs.fallback_correlation == (None,) and inputs.registered_correlation > 0.95
    blank = fallback_fit(inputs, SETTINGS.camera_model)
    assert blank.verdict == OK and "Frame 5 shares too little texture" in blank.text, blank.text


def test_a_neighbours_motion_that_does_not_fit_the_frame_it_places_fails(tmp_path: Path):
    """A frame of another scene (a cut) in a pan takes its neighbour's motion, which aligns it onto the frame before
    no better than chance: the fallback_fit finding fails, naming it; a placement that fits passes."""
    frames = film(make_scene(1), 8)
    frames[5] = film(make_scene(7), 8)[5]
    write_frames(tmp_path / "frames", frames)
    write_frames(tmp_path / "masks" / "thing", np.zeros(frames.shape[:3], np.uint8))
    run_homography("clip", tmp_path / "frames", tmp_path / "masks", tmp_path / "homography", tmp_path / "preview.mp4")
    inputs = read_sample("clip", tmp_path / "frames", tmp_path / "masks", ["thing"], tmp_path / "homography")
    assert inputs.fallback_frames == (5,)
    cut = fallback_fit(inputs, SETTINGS.camera_model)
    assert cut.verdict == FAIL and cut.frames == [5] and cut.figure > 0.8, cut.text
    assert "A neighbour's motion aligns frame 5 to " in cut.text and "Trim them" in cut.text
    fits = fallback_fit(replace(inputs, fallback_correlation=(inputs.registered_correlation - 0.01,)),
                        SETTINGS.camera_model)
    assert fits.verdict == OK and fits.figure == pytest.approx(0.01), fits.text
    many = fallback_fit(replace(inputs, fallback_frames=tuple(range(1, 14)), fallback_correlation=(
        *[0.5 + 0.01 * t for t in range(1, 12)], None, None)), SETTINGS.camera_model)
    assert many.verdict == FAIL and many.frames[0] == 1 and "frame 1 to 0.51, frame 2 to 0.52" in many.text
    assert "frame 11" not in many.text and "frame 10 to 0.60 ..." in many.text and "Frames 12, 13 share" in many.text
    clean = finding(check_camera_model(sample("clean"), fitted("clean"), SETTINGS.camera_model), "fallback_fit")
    assert clean.verdict == OK and clean.text == "No frame was placed by a neighbour's motion."


def test_lens_distortion_is_told_from_a_rolling_shutter():
    distorted = check_camera_model(sample("lens_distortion"), fitted("lens_distortion"), SETTINGS.camera_model)
    lens, shutter = finding(distorted, "lens_distortion"), finding(distorted, "rolling_shutter")
    assert lens.verdict != OK and "barrel" in lens.text, lens.text
    assert shutter.figure < lens.figure
    clean = check_camera_model(sample("clean"), fitted("clean"), SETTINGS.camera_model)
    assert finding(clean, "lens_distortion").verdict == OK


# ------------------------------------------------------------------ 2. a moving background


@pytest.mark.parametrize("trait", ["moving_background", "unmasked_mover"])
def test_a_background_that_moves_is_flagged_where_it_moves(trait: str):
    fit, results = run_checks(sample(trait, "bounce"), SETTINGS)
    moving = next(r for r in results if r.check == "moving_background")
    assert moving.verdict != OK, moving.findings[0].text
    assert iou(moving.flagged, truth(trait, "bounce"), fit.free) >= 0.5


def test_a_still_background_with_a_bouncing_shadow_passes():
    _, results = run_checks(sample("clean", "bounce"), SETTINGS)
    assert all(r.verdict == OK for r in results), [f.text for r in results for f in r.findings if f.verdict != OK]


def moving_beside_a_box(shadow: bool, bled: tuple[int, ...] = ()
                        ) -> tuple[np.ndarray, dict[str, np.ndarray], FlowFields, np.ndarray]:
    """A still camera over textured ground, a masked box crossing it to the right, and beside the box either its
    soft shadow (the ground darkened to half, travelling with the box) or an unmasked striped patch that moves down
    by itself. Either way the flow there says 3 px a frame downward (on a shadow, flow follows the edge of the
    light only in part, in no clear direction, as DIS does on path-traced shadows), but in the frames `bled`, where
    it says the box's motion (bled over from the box). Frames, masks, flow and where the shadow or the patch is."""
    frames_n, height, width, step, fall = 16, 96, 160, (5, 0), (0, 3)
    rng = np.random.default_rng(3)
    ground = cv2.GaussianBlur(rng.uniform(40, 220, (height, width, 3)).astype(np.float32), (0, 0), 1.5)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.zeros((frames_n, height, width, 3), np.uint8)
    box = np.zeros((frames_n, height, width), bool)
    where = np.zeros_like(box)
    forward = np.zeros((frames_n - 1, height, width, 2), np.float32)
    for t in range(frames_n):
        left = 20 + step[0] * t
        box[t] = (xs >= left) & (xs < left + 20) & (ys >= 30) & (ys < 50)
        image = ground.copy()
        if shadow:
            inside = 1.0 - ((xs - left - 30) / 18) ** 2 - ((ys - 54) / 7) ** 2
            darkening = np.clip(inside * 3.0, 0.0, 1.0)
            image *= (1.0 - 0.5 * darkening)[..., None]
            where[t] = darkening > 0.1
        else:
            top = 20 + fall[1] * t
            where[t] = (xs >= left + 22) & (xs < left + 46) & (ys >= top) & (ys < top + 16)
            image[where[t]] = np.where((xs[where[t]] // 3) % 2 == 0, 200.0, 60.0)[:, None]
        image[box[t]] = (200.0, 40.0, 40.0)
        frames[t] = np.clip(np.rint(image + rng.normal(0, 1.5, image.shape)), 0, 255).astype(np.uint8)
        if t < frames_n - 1:
            around = cv2.dilate(where[t].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            forward[t][around] = step if t in bled else fall
            forward[t][box[t]] = step
    ones = np.ones(forward.shape[:3], np.float32)
    return frames, {"box": box}, FlowFields(forward, -forward, ones, ones), where


@pytest.mark.parametrize("shadow", [True, False])
def test_a_shadow_the_flow_moves_is_not_taken_for_a_mover_and_a_patch_is(shadow: bool):
    """A region the flow moves on its own is a mover only where the frame shows something else than the plate: a
    shadow shows the plate's own ground under less light, and travels with its object."""
    frames, masks, flow, where = moving_beside_a_box(shadow)
    still = Camera(np.repeat(np.eye(3)[None], len(frames), axis=0), frames.shape[1:3])
    fit = fit_background(frames, still, masks, flow, SETTINGS.background.fit_settings())
    shown = where & fit.free
    assert fit.unfit[shown].mean() > 0.8  # neither fits the plate
    moves = np.stack([fit.moves_by_itself(t) for t in range(len(frames))])
    if shadow:
        assert not moves.any()
    else:
        assert (fit.mover | fit.parallax)[shown].mean() > 0.5


def test_a_mover_is_followed_through_the_frames_where_the_flow_bleeds_the_objects_motion_over_it():
    """Where the flow gives the patch beside the box the box's own motion for a few frames, the patch is still
    mapped there, beyond the band beside the box where the flow bleeds: carried on from the frames around."""
    bled = (5, 6, 7, 8, 9)
    frames, masks, flow, where = moving_beside_a_box(False, bled)
    still = Camera(np.repeat(np.eye(3)[None], len(frames), axis=0), frames.shape[1:3])
    fit = fit_background(frames, still, masks, flow, SETTINGS.background.fit_settings())
    lost = np.zeros(len(frames), bool)
    lost[list(bled)] = True
    shown = where & fit.free & ~grow(masks["box"], 6)
    assert shown[lost].sum() > 1000
    assert fit.mover[lost][shown[lost]].mean() > 0.5


# ------------------------------------------------------------------ 3. exposure and white balance


def test_exposure_and_white_balance_drifts_are_measured_per_frame():
    brightness = check_exposure(fitted("exposure"), SETTINGS.exposure)
    assert finding(brightness, "brightness").verdict != OK
    assert finding(brightness, "white_balance").verdict == OK
    assert np.all(np.diff(brightness.series["brightness"]) > 0)  # the ramp, frame by frame
    balance = check_exposure(fitted("white_balance"), SETTINGS.exposure)
    shift = finding(balance, "white_balance")
    assert shift.verdict != OK and ("red" in shift.text or "blue" in shift.text), shift.text  # red up, blue down
    assert finding(balance, "brightness").verdict == OK
    assert check_exposure(fitted("clean"), SETTINGS.exposure).verdict == OK


def test_a_flicker_is_told_from_a_drift():
    inputs = sample("clean")
    flicker = 1.0 + 0.08 * (np.arange(FRAMES) % 2)[:, None, None, None]
    frames = np.clip(np.rint(inputs.frames * flicker), 0, 255).astype(np.uint8)
    fit = fit_background(frames, inputs.camera, inputs.masks, None, SETTINGS.background.fit_settings())
    result = check_exposure(fit, SETTINGS.exposure)
    assert finding(result, "flicker").verdict != OK and finding(result, "brightness").verdict == OK


# ------------------------------------------------------------------ 4. the masks


def test_a_mask_that_jumps_in_one_frame_is_flagged_there():
    result = check_masks(sample("mask_jump"), SETTINGS.masks)
    jump, flow = finding(result, "area_jump", "dog"), finding(result, "flow_disagreement", "dog")
    assert jump.verdict != OK and flow.verdict != OK
    assert FRAMES // 2 in jump.frames and {FRAMES // 2, FRAMES // 2 + 1} & set(flow.frames)
    assert result.flagged[FRAMES // 2].any()
    clean = check_masks(sample("clean"), SETTINGS.masks)
    assert clean.verdict == OK, [f.text for f in clean.findings if f.verdict != OK]


def test_a_mask_over_most_of_the_frame_or_at_its_edge_is_flagged():
    inputs = sample("clean")
    big = inputs.masks["dog"].copy()
    big[:, 5:-5, 5:-5] = True
    result = check_masks(replace(inputs, masks={"dog": big}), SETTINGS.masks)
    assert finding(result, "cover").verdict == FAIL
    edge = inputs.masks["dog"].copy()
    edge[:, 40:60, :10] = True
    assert finding(check_masks(replace(inputs, masks={"dog": edge}), SETTINGS.masks), "edge").verdict == WARN


# ------------------------------------------------------------------ 5. the layers and 6. two seeds


def true_layers(trait: str = "clean", preset: str = "dog") -> Layers:
    clip = footage_clip(trait, preset, FRAMES, WIDTH, HEIGHT).clip
    return Layers({name: clip.layers[name].copy() for name in clip.object_names}, clip.background.copy(),
                  clip.frames.copy())


def test_true_layers_pass_every_layer_check():
    inputs, layers = sample("clean"), true_layers()
    result = check_layers(inputs, layers, fitted("clean"), SETTINGS.layers)
    assert result.verdict == OK, [f.text for f in result.findings if f.verdict != OK]


def test_alpha_far_from_its_object_is_a_leak():
    inputs, layers = sample("clean"), true_layers()
    patch = np.zeros(inputs.frames.shape[:3], bool)
    patch[:, :20, -30:] = True  # in the far corner, in every frame, where it lies beyond the dog's reach
    beyond = patch & ~reach_zone(inputs.masks["dog"], SETTINGS.background.effect_reach)
    assert beyond.sum() > 0.2 * patch.sum()
    layers.rgba["dog"][..., 3][beyond] = 255
    result = check_layers(inputs, layers, fitted("clean"), SETTINGS.layers)
    leak = finding(result, "leak", "dog")
    assert leak.verdict != OK, leak.text
    assert result.flagged[beyond].all() and result.flagged[~beyond].mean() < 0.01


def test_a_long_shadow_running_on_from_its_object_is_no_leak_and_the_same_shadow_apart_is():
    """A shadow cast long by a low sun runs from the object past any fixed reach (here half an object size): joined
    to what the layer holds within the reach it is the object's; the same alpha beyond the reach, cut off from it,
    is alpha the object cannot reach."""
    inputs, layers = sample("clean"), true_layers()
    fit = fitted("clean")
    fit = replace(fit, settings=replace(fit.settings, effect_reach=0.5))
    mask = inputs.masks["dog"]
    zone = reach_zone(mask, 0.5)
    distance = np.stack([cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 5) for m in mask])
    band = np.zeros_like(mask)
    for t in range(FRAMES):
        bottom = int(np.nonzero(mask[t])[0].max())
        band[t, bottom - 5:bottom + 1] = True  # along the ground from the dog's feet to both edges of the frame
    alpha = layers.rgba["dog"][..., 3]
    original = alpha.copy()
    shadow = band & (distance > 0)
    alpha[shadow] = np.maximum(alpha[shadow], 100)
    assert (alpha / 255 * ~zone).sum() > 0.1 * mask.sum()  # by distance alone: a leak past leak_fail
    joined = finding(check_layers(inputs, layers, fit, SETTINGS.layers), "leak", "dog")
    assert joined.verdict == OK, joined.text
    alpha[:] = original
    gap = np.ones((7, 7), np.uint8)  # 3 px past the reach
    apart = band & ~np.stack([cv2.dilate(z.astype(np.uint8), gap) > 0 for z in zone])
    alpha[apart] = np.maximum(alpha[apart], 100)
    found = finding(check_layers(inputs, layers, fit, SETTINGS.layers), "leak", "dog")
    assert found.verdict != OK, found.text


@pytest.mark.parametrize(("alpha", "name", "verdict"), [(0, "collapse", FAIL), (255, "fill", FAIL)])
def test_a_layer_that_collapses_or_fills_the_frame(alpha: int, name: str, verdict: str):
    inputs, layers = sample("clean"), true_layers()
    layers.rgba["dog"][..., 3] = alpha
    assert finding(check_layers(inputs, layers, fitted("clean"), SETTINGS.layers), name, "dog").verdict == verdict


def test_two_layers_claiming_one_shadow_overlap():
    inputs = sample("clean", "crossing")
    layers = true_layers("clean", "crossing")
    clean = check_layers(inputs, layers, fitted("clean", "crossing"), SETTINGS.layers)
    assert finding(clean, "overlap").verdict == OK
    shadow = layers.rgba["near_walker"][..., 3] * ~inputs.masks["near_walker"]
    layers.rgba["far_walker"][..., 3] = np.maximum(layers.rgba["far_walker"][..., 3], shadow)
    claimed = check_layers(inputs, layers, fitted("clean", "crossing"), SETTINGS.layers)
    assert finding(claimed, "overlap").verdict != OK


def test_a_reconstruction_that_misses_where_no_layer_is():
    inputs, layers = sample("clean"), true_layers()
    layers.reconstruction[:, :30, -50:] = 128
    result = check_layers(inputs, layers, fitted("clean"), SETTINGS.layers)
    missed = finding(result, "missed")
    assert missed.verdict != OK and result.flagged[:, :30, -50:].mean() > 0.8


def test_a_reconstruction_that_leaves_the_parallax_to_no_layer_is_missing_only_what_check_1_does_not_report(
        monkeypatch):
    """Where the pole slides over the ground, layers that give it to no one (as rendering does) reconstruct the
    ground instead: where the fit finds the pole that is check 1's finding, not a miss of the layers'."""
    inputs, layers, fit = sample("parallax"), true_layers("parallax"), fitted("parallax")
    pole = truth("parallax")
    layers.reconstruction[pole] = layers.background[pole]
    unexplainable = np.stack([fit.unexplainable(t) for t in range(FRAMES)])
    share, where = missed_share(inputs, layers, fit)
    assert not (where & unexplainable).any()
    monkeypatch.setattr(type(fit), "unexplainable", lambda self, t: np.zeros(inputs.shape, bool))
    share_counting_the_pole, _ = missed_share(inputs, layers, fit)
    assert share.mean() < 0.6 * share_counting_the_pole.mean()


def test_a_layer_that_takes_up_the_parallax_is_said_to():
    inputs, layers = sample("parallax"), true_layers("parallax")
    fit = fitted("parallax")
    assert finding(check_layers(inputs, layers, fit, SETTINGS.layers), "absorbed", "dog").verdict == OK
    for t in range(FRAMES):
        layers.rgba["dog"][t, ..., 3][fit.unexplainable(t)] = 255
    assert finding(check_layers(inputs, layers, fit, SETTINGS.layers), "absorbed", "dog").verdict == FAIL


def test_two_seeds_agree_or_not():
    first, second = true_layers(), true_layers()
    assert check_seeds(first, second, SETTINGS.seeds).verdict == OK
    second.rgba["dog"][..., 3] = np.roll(second.rgba["dog"][..., 3], 12, axis=2)
    result = check_seeds(first, second, SETTINGS.seeds)
    assert result.verdict == FAIL and result.flagged.any()


# ------------------------------------------------------------------ the stage: outputs, strictness, settings


def run_stage(inputs: SampleInputs, folder: Path, settings: DiagnoseSettings = SETTINGS) -> dict:
    return diagnose(inputs, settings, folder / "diagnostics.json", folder / "diagnostics.png",
                    folder / "diagnostics_flags.npz", folder / "report" / "diagnostics.html")


def test_outputs_of_a_flagged_clip(tmp_path: Path, package_log):
    inputs = replace(sample("parallax"), layers=true_layers("parallax"))
    report = run_stage(inputs, tmp_path)
    written = json.loads((tmp_path / "diagnostics.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert written["verdict"] in (WARN, FAIL) and written["checks"]["camera_model"]["verdict"] != OK
    assert set(written["checks"]) == {"camera_model", "moving_background", "exposure", "masks", "layers"}
    assert len(written["checks"]["camera_model"]["per_frame"]["unexplained"]) == FRAMES
    assert written["measured"]["noise_levels"]["median"] > 0
    sheet = read_png(tmp_path / "diagnostics.png")
    assert sheet.shape[1] > 4 * WIDTH and sheet.std() > 20
    flags = read_flags(tmp_path / "diagnostics_flags.npz")
    assert flags.verdicts["camera_model"] == written["checks"]["camera_model"]["verdict"]
    assert flags.maps["camera_model"].shape == (FRAMES, HEIGHT, WIDTH) and flags.maps["camera_model"].any()
    assert "moving_background" not in flags.maps  # only checks that are not ok
    table = (tmp_path / "report" / "diagnostics.html").read_text()
    assert "parallax" in table and table.count("<tr>") == 1 + sum(len(c["findings"]) for c in written["checks"].values())
    verdicts = {r.getMessage() for r in package_log.records if "diagnose " + written["verdict"].upper() in r.getMessage()}
    assert verdicts == {written["summary"]} and written["summary"].startswith("parallax_dog: diagnose")


def test_strict_turns_a_fail_into_a_failed_stage(tmp_path: Path):
    strict = replace(SETTINGS, strict=True, camera_model=replace(SETTINGS.camera_model, unexplained_fail=0.02))
    with pytest.raises(StageError) as failed:
        run_stage(sample("parallax"), tmp_path, strict)
    message = str(failed.value)
    assert message.startswith("[diagnose] sample 'parallax_dog': camera_model")
    assert "mask each standing thing" in message and "diagnose.strict" in message
    run_stage(sample("clean"), tmp_path / "clean", replace(SETTINGS, strict=True))  # nothing fails: no error


def test_settings_agree_with_the_config_and_refuse_unknown_keys():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["diagnose"]
    assert DiagnoseSettings.from_dict(config) == DiagnoseSettings()
    with pytest.raises(ValueError, match="diagnose.camera_model: unknown key"):
        DiagnoseSettings.from_dict({"camera_model": {"drift": 3}})


def test_the_overview_outlines_what_a_failing_check_flags(tmp_path: Path):
    scene = ball_and_box()
    root = write_scene(scene, tmp_path / "sample")
    region = np.zeros((len(scene.background), *scene.background.shape[1:3]), bool)
    region[:, 30:44, 4:24] = True
    flags_path = tmp_path / "flags.npz"
    failing = CheckResult("camera_model", "camera model",
                          [Finding("camera_model", "unexplained", 0.5, "share", 0.02, 0.08, "", "")], {}, region)
    write_flags(flags_path, [failing])
    for flags, name in ((None, "plain.mp4"), (flags_path, "flagged.mp4")):
        run_composite("toy", root / "frames", root / "omnimatte", scene.names, tmp_path / name, 24.0, flags_path=flags)
    plain, flagged = read_video(tmp_path / "plain.mp4"), read_video(tmp_path / "flagged.mp4")
    height, width = scene.background.shape[1:3]
    outline = np.abs(flagged[:, :height, :width].astype(int) - plain[:, :height, :width]).sum(-1) > 60
    below_label = outline[:, 20:]  # the label names the check
    assert below_label[:, 8:26, 2:26].mean() > 5 * below_label[:, :, 30:].mean()  # the rest differs by encoding
    drawn, names = outline_flagged(scene.frames[0], read_flags(flags_path), 0)
    assert names == ["camera model fail"]
    assert (drawn[29:46, 3:25] != scene.frames[0][29:46, 3:25]).any(axis=-1).mean() > 0.2
    assert np.array_equal(drawn[:, 30:], scene.frames[0][:, 30:])


def test_the_suites_row_says_the_verdicts_and_how_the_flagged_map_covers_the_true_region(tmp_path: Path):
    """What the fast and rendered suites record of each clip: the verdict, the checks that are not ok and, against
    the region the renderer knows (a rendered clip's gt/unexplained/, shares of 255), the flagged map's IoU."""
    shares = truth("parallax").astype(np.uint8) * 255
    parallax = diagnose_inputs(replace(sample("parallax"), layers=true_layers("parallax")), tmp_path / "parallax",
                               SETTINGS, shares)
    row = parallax["row"]
    assert row["diagnose"] != OK and row["diagnose_flagged"].startswith("camera_model ")
    assert row["unexplained_iou"] >= 0.4
    assert parallax["checks"]["camera_model"]["verdict"] != OK and parallax["checks"]["camera_model"]["findings"]
    written = json.loads((tmp_path / "parallax" / "diagnostics.json").read_text())
    assert written["verdict"] == row["diagnose"]
    assert (tmp_path / "parallax" / "diagnostics.png").exists() and (tmp_path / "parallax" / "diagnostics.html").exists()
    half = diagnose_inputs(sample("parallax"), tmp_path / "half", SETTINGS, shares // 2)  # under half a pixel each
    assert half["row"]["unexplained_iou"] is None

    clean = diagnose_inputs(replace(sample("clean"), layers=true_layers("clean")), tmp_path / "clean", SETTINGS,
                            np.zeros_like(shares))
    assert clean["row"]["diagnose"] == OK and clean["row"]["diagnose_flagged"] == ""
    assert clean["row"]["unexplained_iou"] is None and all(c["findings"] == [] for c in clean["checks"].values())


@pytest.mark.slow
def test_the_rule_runs_in_all_on_the_tiny_demo_and_strict_fails_the_job(workdir: Path):
    config = write_config(workdir, TINY)
    result = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    dog = workdir / "results" / "dog"
    report = json.loads((dog / "diagnostics.json").read_text())
    assert set(report["checks"]) == {"camera_model", "moving_background", "exposure", "masks", "layers"}
    assert report["verdict"] in (OK, WARN, FAIL) and report["measured"]["layers_checked"]
    frames = len(list((dog / "frames").glob("*.png")))
    assert len(report["checks"]["camera_model"]["per_frame"]["unexplained"]) == frames
    assert report["summary"] in (workdir / "logs" / "diagnose" / "dog.log").read_text()
    assert read_png(dog / "diagnostics.png").shape[1] > 600
    assert (dog / "report" / "diagnostics.html").is_file() and (dog / "omnimatte.mp4").is_file()
    assert (workdir / "benchmarks" / "diagnose" / "dog.tsv").is_file()
    page = run_snakemake(workdir, "--configfile", config, "--report", "report.html", "--", "all")
    assert page.returncode == 0, page.stderr[-3000:]
    assert "diagnostics.png" in (workdir / "report.html").read_text()

    # A fail under diagnose.strict fails the job, naming the sample, the stage and what to do.
    strict = write_config(workdir, TINY + "diagnose: {strict: true, masks: {cover_warn: 0.0, cover_fail: 0.0}}\n",
                          "strict.yaml")
    failed = run_snakemake(workdir, "--cores", "2", "--configfile", strict, "--", "results/dog/diagnostics.json")
    assert failed.returncode != 0
    log = (workdir / "logs" / "diagnose" / "dog.log").read_text()
    assert "[diagnose] sample 'dog': masks [dog]" in log and "fix:" in log and "diagnose.strict" in log


def test_two_seeds_train_the_sample_twice_only_when_asked(workdir: Path):
    plain = run_snakemake(workdir, "-n", "results/dog/diagnostics.json")
    assert plain.returncode == 0 and "train_second_seed" not in plain.stdout
    config = write_config(workdir, "diagnose: {seeds: {enabled: true}}\ntrain: {seed: 4}\n")
    planned = run_snakemake(workdir, "-n", "-p", "--configfile", config, "--", "results/dog/diagnostics.json")
    assert planned.returncode == 0, planned.stderr[-2000:]
    job = planned.stdout[planned.stdout.index("rule train_second_seed:"):]
    job = job[:job.index("\n\n", job.index("omnimatte train"))]
    assert "results/dog/second_seed/train/model.pt" in job and '"seed": 5' in job  # train.seed + seed_offset
    job = planned.stdout[planned.stdout.index("rule render_second_seed:"):]
    job = job[:job.index("\n\n", job.index("omnimatte render"))]
    assert "--model results/dog/second_seed/train/model.pt --out results/dog/second_seed/omnimatte" in job
    diagnose_job = planned.stdout[planned.stdout.index("rule diagnose:"):]
    assert "results/dog/second_seed/omnimatte" in diagnose_job[:diagnose_job.index("\n\n")]


def test_the_effect_reach_reaches_training(workdir: Path):
    """diagnose.background.effect_reach also decides which frames the canvas's starting plate trusts: both trainings
    are given it, and the train stage refuses a negative one in the sample's name."""
    config = write_config(workdir, "diagnose: {background: {effect_reach: 3.5}, seeds: {enabled: true}}\n")
    planned = run_snakemake(workdir, "-n", "-p", "--configfile", config, "--", "results/dog/diagnostics.json")
    assert planned.returncode == 0, planned.stderr[-2000:]
    for rule in ("train", "train_second_seed"):
        job = planned.stdout[planned.stdout.index(f"rule {rule}:"):]
        assert "--effect-reach 3.5 " in job[:job.index("\n\n", job.index("omnimatte train"))]
    refused = subprocess.run([sys.executable, "-m", "omnimatte", "train", "--sample", "dog", "--frames", "f",
                              "--flow", "f", "--homography", "h", "--masks", "m", "--objects", "dog",
                              "--train-dir", "t", "--effect-reach", "-1"], capture_output=True, text=True)
    assert refused.returncode != 0 and "sample 'dog'" in refused.stderr and "effect_reach" in refused.stderr


def test_a_reconstruction_off_by_a_fraction_of_a_pixel_misses_nothing():
    """The reconstruction's background is the plate resampled through the homographies: on textured ground it may
    be off by what the fit allows the plate itself (its registration tolerance), and that is not a miss; a shadow
    that no layer holds is one."""
    inputs, layers = sample("clean"), true_layers()
    shift = np.float32([[1, 0, 0.4], [0, 1, 0.4]])
    height, width = inputs.shape
    layers.reconstruction = np.stack([cv2.warpAffine(frame, shift, (width, height), flags=cv2.INTER_LINEAR,
                                                     borderMode=cv2.BORDER_REFLECT) for frame in inputs.frames])
    assert finding(check_layers(inputs, layers, fitted("clean"), SETTINGS.layers), "missed").verdict == OK
    shadow = layers.reconstruction.astype(np.float32)
    shadow[:, -40:, :60] *= 0.6  # a shadow in the reconstruction that the frames do not have, no layer there
    layers.reconstruction = shadow.astype(np.uint8)
    missed = finding(check_layers(inputs, layers, fitted("clean"), SETTINGS.layers), "missed")
    assert missed.verdict != OK, missed.text
