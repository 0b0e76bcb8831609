"""The background fit as a stage: written once, read back whole by the render and diagnose stages, and refused when
it was made with other settings or for other frames."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from omnimatte.background_fit import BackgroundFitSettings
from omnimatte.background_fit_stage import (
    ARRAYS,
    MAPS,
    load_background_fit,
    run_background_fit,
    save_background_fit,
)
from omnimatte.benchmark import prepare_synthetic
from omnimatte.diagnose import DiagnoseSettings, run_diagnose
from omnimatte.errors import StageError
from omnimatte.train.video import load_video

SETTINGS = BackgroundFitSettings()
FRAMES, WIDTH, HEIGHT = 8, 160, 96


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """A small synthetic clip through the flow and homography stages, and its background fit's file."""
    work = tmp_path_factory.mktemp("clip")
    synthetic, _, _ = prepare_synthetic(work, "bounce", FRAMES, WIDTH, HEIGHT, 4, torch.device("cpu"), "none",
                                        canvas_plate=False)
    folders = dict(frames_dir=work / "frames", masks_dir=work / "masks", object_names=synthetic.object_names,
                   homography_dir=work / "homography", flow_dir=work / "flow")
    fit = run_background_fit("tiny", **folders, settings=SETTINGS, out=work / "background_fit.npz")
    return {"work": work, "folders": folders, "fit": fit, "file": work / "background_fit.npz"}


def test_a_fit_comes_back_from_its_file_as_it_was(clip):
    fit = clip["fit"]
    read = load_background_fit("render", "tiny", clip["file"], SETTINGS, FRAMES, (HEIGHT, WIDTH))
    for name in (*ARRAYS, *MAPS):
        assert np.array_equal(getattr(read, name), getattr(fit, name)), name
        assert getattr(read, name).dtype == getattr(fit, name).dtype, name
    assert fit.free.any() and not fit.free.all() and fit.near.any()  # the packed maps hold something to lose
    assert np.array_equal(read.camera.homographies, fit.camera.homographies)
    assert read.camera.canvas_size == fit.camera.canvas_size and read.flow_noise == fit.flow_noise
    assert read.settings == SETTINGS


def test_maps_of_a_width_that_is_no_multiple_of_8_come_back_cut_to_it(clip, tmp_path):
    """The (T, H, W) maps are stored a bit a pixel, in whole bytes a row: the padding must not come back."""
    width = WIDTH - 3
    frame_sized = {name: getattr(clip["fit"], name)[..., :width]
                   for name in (*MAPS, "residual", "change", "flow_residual")}
    narrow = dataclasses.replace(clip["fit"], **frame_sized)
    save_background_fit(tmp_path / "narrow.npz", narrow)
    read = load_background_fit("render", "tiny", tmp_path / "narrow.npz", SETTINGS, FRAMES, (HEIGHT, width))
    for name in MAPS:
        assert getattr(read, name).shape == (FRAMES, HEIGHT, width)
        assert np.array_equal(getattr(read, name), getattr(narrow, name)), name


def test_a_fit_for_other_settings_or_frames_is_refused(clip, tmp_path):
    other = dataclasses.replace(SETTINGS, residual_threshold=4.0)
    with pytest.raises(StageError) as refused:
        load_background_fit("diagnose", "tiny", clip["file"], other, FRAMES, (HEIGHT, WIDTH))
    message = str(refused.value)
    assert message.startswith("[diagnose] sample 'tiny'") and "residual_threshold 3.0 (now 4.0)" in message
    assert "forcerun background_fit" in message
    with pytest.raises(StageError, match="for 8 frames of 160x96, the frames are 9 of 160x96"):
        load_background_fit("render", "tiny", clip["file"], SETTINGS, FRAMES + 1, (HEIGHT, WIDTH))
    with pytest.raises(StageError, match="is missing"):
        load_background_fit("render", "tiny", tmp_path / "none.npz", SETTINGS, FRAMES, (HEIGHT, WIDTH))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(clip["file"].read_bytes()[:1000])
    with pytest.raises(StageError, match="cannot be read"):
        load_background_fit("render", "tiny", broken, SETTINGS, FRAMES, (HEIGHT, WIDTH))


def test_the_render_stage_reads_the_fit_it_is_given(clip):
    """The effect claim's maps from the stage's file are those of a fit made in the render stage itself."""
    folders = clip["folders"]
    common = dict(sample="tiny", frames_dir=folders["frames_dir"], flow_dir=folders["flow_dir"],
                  homography_dir=folders["homography_dir"], masks_dir=folders["masks_dir"],
                  object_names=folders["object_names"], trimap_band=4, device=torch.device("cpu"), canvas_plate=False,
                  background_fit=SETTINGS, stage="render")
    made = load_video(**common)
    read = load_video(**common, background_fit_file=clip["file"])
    assert torch.equal(made.unexplained.moves_by_itself, read.unexplained.moves_by_itself)
    assert torch.equal(made.unexplained.misfit, read.unexplained.misfit)
    with pytest.raises(StageError, match=r"^\[render\] sample 'tiny': the background fit .* other settings"):
        load_video(**{**common, "background_fit": dataclasses.replace(SETTINGS, persistence=0.7)},
                   background_fit_file=clip["file"])


def test_the_diagnose_stage_reads_the_fit_it_is_given(clip, tmp_path):
    """Every figure the diagnose stage reports from the stage's file is the one it reports from a fit of its own."""
    folders = clip["folders"]
    reports = []
    for name, fit_file in (("made", None), ("read", clip["file"])):
        out = tmp_path / name
        report = run_diagnose("tiny", folders["frames_dir"], folders["masks_dir"], folders["object_names"],
                              folders["homography_dir"], folders["flow_dir"], None, out / "diagnostics.json",
                              out / "diagnostics.png", out / "flags.npz", out / "table.html", DiagnoseSettings(),
                              background_fit_file=fit_file)
        report = json.loads(json.dumps(report))
        report["measured"].pop("seconds")
        reports.append(report)
    assert reports[0] == reports[1]
