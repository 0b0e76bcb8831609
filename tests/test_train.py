"""The train stage on a tiny hand-made scene: output contract, resume after a kill, loud failures."""

import dataclasses
import itertools
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from omnimatte import losses
from omnimatte import train as train_module
from omnimatte.errors import StageError
from omnimatte.fingerprint import inputs_digest
from omnimatte.io import read_frames, read_png, save_json, save_npy, write_frames
from omnimatte.model import colour_difference
from omnimatte.render.effect_claim import FREE_ALPHA
from omnimatte.render.stage import run_render
from omnimatte.render_switches import RENDER_ONLY
from omnimatte.train import LossWeights, TrainConfig, run_train
from omnimatte.train import loop as train_loop
from omnimatte.train import objective as train_objective
from omnimatte.train import schedule as train_schedule
from tests.helpers import over

T, H, W = 6, 48, 64


@pytest.fixture
def scene(tmp_path: Path) -> dict:
    """A red square sliding right over a textured ground that pans 2 px a frame, with flow and homographies to match."""
    return write_scene(tmp_path, pan=2)


def write_scene(tmp_path: Path, *, pan: int, noise: float = 0.0) -> dict:
    """The scene fixture's square over a ground that pans `pan` px a frame (at most 3), each frame with Gaussian
    noise of `noise` levels of its own."""
    rng = np.random.default_rng(0)
    ground = (rng.random((H, W + pan * T, 3)) * 255).astype(np.uint8)
    frames, masks = [], []
    for t in range(T):
        frame = ground[:, pan * t:pan * t + W].copy()
        if noise:
            frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).round().astype(np.uint8)
        mask = np.zeros((H, W), np.uint8)
        x = 8 + 5 * t
        frame[16:32, x:x + 12] = (220, 40, 40)
        mask[16:32, x:x + 12] = 255
        frames.append(frame)
        masks.append(mask)
    write_frames(tmp_path / "frames", frames)
    write_frames(tmp_path / "masks" / "square", masks)
    (tmp_path / "flow").mkdir()
    forward = np.zeros((T - 1, H, W, 2), np.float32)
    forward[..., 0] = -pan
    forward[:, 16:32, :, 0] = 3.0
    save_npy(tmp_path / "flow" / "forward.npy", forward)
    backward = np.zeros((T - 1, H, W, 2), np.float32)
    backward[..., 0] = pan
    backward[:, 16:32, :, 0] = -3.0
    save_npy(tmp_path / "flow" / "backward.npy", backward)
    save_npy(tmp_path / "flow" / "confidence_forward.npy", np.ones((T - 1, H, W), np.float32))
    save_npy(tmp_path / "flow" / "confidence_backward.npy", np.ones((T - 1, H, W), np.float32))
    (tmp_path / "homography").mkdir()
    homographies = np.stack([np.array([[1, 0, pan * t], [0, 1, 0], [0, 0, 1]], float) for t in range(T)])
    save_npy(tmp_path / "homography" / "homographies.npy", homographies)
    save_json(tmp_path / "homography" / "canvas.json", {"width": W + 16, "height": H})
    return {"frames_dir": tmp_path / "frames", "flow_dir": tmp_path / "flow", "homography_dir": tmp_path / "homography",
            "masks_dir": tmp_path / "masks", "object_names": ["square"], "out_dir": tmp_path / "omnimatte",
            "train_dir": tmp_path / "train"}


def train_and_render(sample: str, *, out_dir: Path, config: TrainConfig, **inputs) -> dict:
    """The train stage, then the render stage from its model.pt into `out_dir`, as the pipeline runs them: both
    summaries in one."""
    trained = run_train(sample, **inputs, config=config)
    rendered = run_render(sample, inputs["frames_dir"], inputs["flow_dir"], inputs["homography_dir"],
                          inputs["masks_dir"], inputs["object_names"], inputs["train_dir"] / "model.pt", out_dir, config)
    return {**trained, **rendered}


def training_inputs(scene: dict) -> dict:
    """The scene's inputs of the train stage (all but the render stage's output folder)."""
    return {key: value for key, value in scene.items() if key != "out_dir"}


def tiny_config(**changes) -> TrainConfig:
    """A tiny network trained for exactly `steps` steps (min_steps = max_steps = steps), unless told otherwise."""
    settings = dict(steps=12, batch_size=2, nf=8, checkpoint_every=4, device="cpu", cpu={})
    settings.update(changes)
    settings.setdefault("min_steps", settings["steps"])
    settings.setdefault("max_steps", settings["steps"])
    return TrainConfig(**settings)


def test_writes_the_output_contract(scene: dict):
    summary = train_and_render("tiny", **scene, config=tiny_config())
    out = scene["out_dir"]
    layers = read_frames(out / "layers" / "square" / "rgba", mode="rgba")
    assert layers.shape == (T, H, W, 4)
    assert read_frames(out / "background").shape == (T, H, W, 3)
    assert read_frames(out / "reconstruction").shape == (T, H, W, 3)
    train_dir = scene["train_dir"]
    for name in ("model.pt", "losses.csv", "losses.png", "summary.json"):
        assert (train_dir / name).is_file()
    assert not (train_dir / "checkpoint.pt").exists()  # removed once the model is written
    rows = (train_dir / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("step,seconds,total,reconstruction")
    assert summary["steps"] == 12 and np.isfinite(summary["psnr_output"])
    assert json.loads((train_dir / "summary.json").read_text())["device"] == "cpu"


def test_detail_transfer_brings_the_composite_closer_to_the_input(scene: dict):
    summary = train_and_render("tiny", **scene, config=tiny_config(steps=4))
    assert summary["psnr_output"] > summary["psnr_model"] + 1.0
    # The written reconstruction is the written layer over the written background.
    # Each of the three was rounded to 8 bits apart: the colour and the reconstruction by at most half a level,
    # the alpha by half a step, which moves the composite by at most half a level too.
    layer = read_png(scene["out_dir"] / "layers" / "square" / "rgba" / "00002.png", mode="rgba")
    background = read_png(scene["out_dir"] / "background" / "00002.png")
    recon = read_png(scene["out_dir"] / "reconstruction" / "00002.png")
    assert np.abs(over(background, [layer]) - recon).max() <= 1.5


def test_the_background_is_the_frame_where_nothing_but_the_background_shows(tmp_path: Path):
    """With the background detail, the written background of a noisy clip is the frame itself, its noise included,
    where no layer holds alpha and the registered background explains the frame; where a layer holds alpha it is the
    model's background as before, and the layers' alpha and the model's own composite do not change."""
    scene = write_scene(tmp_path, pan=2, noise=4.0)
    config = tiny_config(steps=12)
    run_train("tiny", **training_inputs(scene), config=config)
    inputs = (scene["frames_dir"], scene["flow_dir"], scene["homography_dir"], scene["masks_dir"], ["square"],
              scene["train_dir"] / "model.pt")
    detailed = run_render("tiny", *inputs, tmp_path / "on", config)
    learnt = run_render("tiny", *inputs, tmp_path / "off", replace(config, background_detail=False))
    assert detailed["render_settings"]["background_detail"] and not learnt["render_settings"]["background_detail"]
    assert detailed["psnr_model"] == learnt["psnr_model"] and detailed["psnr_output"] > learnt["psnr_output"]
    alpha = read_frames(tmp_path / "on" / "layers" / "square" / "rgba", mode="rgba")[..., 3]
    assert np.array_equal(alpha, read_frames(tmp_path / "off" / "layers" / "square" / "rgba", mode="rgba")[..., 3])
    frames = read_frames(scene["frames_dir"]).astype(int)
    on, off = (read_frames(tmp_path / name / "background").astype(int) for name in ("on", "off"))
    masks = read_frames(scene["masks_dir"] / "square", mode="gray") > 127
    far = ~np.stack([cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0 for m in masks]) & (alpha == 0)
    assert far.mean() > 0.05  # 12 steps leave faint alpha over most of the frame
    # (a few of those pixels lie next to faint alpha, which the step's 1 px edge lets through)
    assert np.mean(np.abs(on - frames).max(axis=-1)[far] <= 1) > 0.9
    assert np.mean(np.abs(off - frames).max(axis=-1)[far] <= 1) < 0.5
    held = alpha >= 255 * FREE_ALPHA
    assert held.any() and np.abs(on - off).max(axis=-1)[held].max() <= 1


def test_the_render_stage_renders_the_trained_model_with_the_configs_rendering_switches(scene: dict, tmp_path: Path):
    """model.pt holds the training's settings without the rendering switches; the render stage takes those from its
    settings, so one trained model renders either way without training again, and its summary says which."""
    config = tiny_config(steps=4)
    run_train("tiny", **training_inputs(scene), config=config)
    stored = torch.load(scene["train_dir"] / "model.pt", weights_only=True)
    assert stored["object_names"] == ["square"] and stored["config"]["steps"] == 4
    assert not set(RENDER_ONLY) & set(stored["config"]) and "background_match_threshold" in stored["config"]
    inputs = (scene["frames_dir"], scene["flow_dir"], scene["homography_dir"], scene["masks_dir"], ["square"],
              scene["train_dir"] / "model.pt")
    with_steps = run_render("tiny", *inputs, tmp_path / "with", config)
    without = run_render("tiny", *inputs, tmp_path / "without", replace(config, fit_alpha=False, fill_cores=False,
                                                                          detail_transfer=False,
                                                                          background_detail=False))
    assert with_steps["render_settings"]["fit_alpha"] and not without["render_settings"]["fit_alpha"]
    assert json.loads((tmp_path / "without" / "summary.json").read_text()) == without
    assert without["psnr_output"] == pytest.approx(without["psnr_model"], abs=0.5)
    assert with_steps["psnr_output"] > without["psnr_output"] + 1.0
    alpha = [read_frames(tmp_path / name / "layers" / "square" / "rgba", mode="rgba")[..., 3] for name in ("with",
                                                                                                           "without")]
    assert not np.array_equal(*alpha)
    # Training's settings come from the model, not from the render stage's: another step count changes nothing.
    again = run_render("tiny", *inputs, tmp_path / "again", replace(config, learning_rate=0.5, nf=16))
    assert again == with_steps
    assert np.array_equal(read_frames(tmp_path / "again" / "layers" / "square" / "rgba", mode="rgba"),
                          read_frames(tmp_path / "with" / "layers" / "square" / "rgba", mode="rgba"))


def test_the_rendering_switches_are_the_render_settings_that_training_never_reads():
    """RENDER_ONLY is RenderSettings but the background match (training reads it too); the train rule's settings
    leave them out, in the CPU overrides too, and keep everything else."""
    from omnimatte.render import RenderSettings
    from omnimatte.render_switches import training_settings

    assert set(RENDER_ONLY) == {field.name for field in dataclasses.fields(RenderSettings)} - {"background_match_threshold"}
    section = {"steps": 5, "fit_shadows": False, "background_match_threshold": 0.05,
               "cpu": {"nf": 8, "detail_transfer": False}}
    assert training_settings(section) == {"steps": 5, "background_match_threshold": 0.05, "cpu": {"nf": 8}}
    assert section["cpu"] == {"nf": 8, "detail_transfer": False}


def test_the_render_stage_refuses_a_model_it_cannot_trust(scene: dict, tmp_path: Path):
    """A missing or broken model.pt, one of other objects, or one trained on other inputs is refused, naming the
    train stage to rerun; nothing is written."""
    config = tiny_config(steps=2)
    run_train("tiny", **training_inputs(scene), config=config)
    model = scene["train_dir"] / "model.pt"

    def render(names=("square",), path=model):
        return run_render("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"], scene["masks_dir"],
                          list(names), path, tmp_path / "out", config)

    with pytest.raises(StageError, match="(?s)is missing.*forcerun train"):
        render(path=tmp_path / "none.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    with pytest.raises(StageError, match="cannot be read"):
        render(path=broken)
    write_frames(scene["masks_dir"] / "other", read_frames(scene["masks_dir"] / "square", mode="gray"))
    with pytest.raises(StageError, match="is of objects square, not square, other"):
        render(names=("square", "other"))
    masks = read_frames(scene["masks_dir"] / "square", mode="gray")
    masks[0, :2] = 255
    write_frames(scene["masks_dir"] / "square", masks)
    with pytest.raises(StageError, match="trained on other frames, flow, homographies or masks"):
        render()
    assert not (tmp_path / "out").exists()


class Killed(Exception):
    pass


def test_resume_after_kill_matches_an_uninterrupted_run(scene: dict, tmp_path: Path, monkeypatch):
    straight = train_and_render("tiny", **{**scene, "out_dir": tmp_path / "a", "train_dir": tmp_path / "ta"},
                                config=tiny_config())
    straight_state = torch.load(tmp_path / "ta" / "model.pt")["model"]

    real_batch = train_loop.Batch
    calls = {"n": 0}

    def dying_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # killed during step 7, after the checkpoint at step 4
            raise Killed()
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(train_loop, "Batch", dying_batch)
    with pytest.raises(Killed):
        train_and_render("tiny", **scene, config=tiny_config())
    checkpoint = torch.load(scene["train_dir"] / "checkpoint.pt", weights_only=False)
    assert checkpoint["step"] == 4
    assert not scene["out_dir"].exists()

    monkeypatch.setattr(train_loop, "Batch", real_batch)
    resumed = train_and_render("tiny", **scene, config=tiny_config())
    resumed_state = torch.load(scene["train_dir"] / "model.pt")["model"]
    for key, value in straight_state.items():
        assert torch.allclose(value, resumed_state[key], atol=1e-6), key
    assert resumed["final_losses"]["total"] == pytest.approx(straight["final_losses"]["total"], rel=1e-5)


def kill_after_first_checkpoint(scene: dict, monkeypatch) -> None:
    """Run training until it dies during step 7, after the checkpoint at step 4."""
    real_batch = train_loop.Batch
    calls = {"n": 0}

    def dying_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise Killed()
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(train_loop, "Batch", dying_batch)
    with pytest.raises(Killed):
        train_and_render("tiny", **scene, config=tiny_config())
    monkeypatch.setattr(train_loop, "Batch", real_batch)
    assert (scene["train_dir"] / "checkpoint.pt").exists()


def test_inputs_digest_covers_frames_masks_flow_and_homographies(scene: dict):
    def digest() -> str:
        return inputs_digest(scene["frames_dir"], scene["flow_dir"], scene["homography_dir"], scene["masks_dir"],
                             scene["object_names"])

    first = digest()
    assert digest() == first
    for path in (scene["frames_dir"] / "00003.png", scene["masks_dir"] / "square" / "00001.png",
                 scene["flow_dir"] / "confidence_forward.npy", scene["homography_dir"] / "canvas.json"):
        original = path.read_bytes()
        path.write_bytes(original + b"\0")  # same shapes as far as training can tell; other bytes
        assert digest() != first, path
        path.write_bytes(original)
    assert digest() == first


def test_checkpoint_of_other_inputs_starts_over_saying_so(scene: dict, monkeypatch, package_log):
    kill_after_first_checkpoint(scene, monkeypatch)
    # The user fixes one mask in place: same size, same count, so the old fingerprint matched.
    mask_path = scene["masks_dir"] / "square" / "00002.png"
    mask = read_png(mask_path, "gray")
    mask[0:4, 0:4] = 255
    write_frames(scene["masks_dir"] / "square", [read_png(p, "gray") if p != mask_path else mask
                                                 for p in sorted((scene["masks_dir"] / "square").iterdir())])
    package_log.clear()
    train_and_render("tiny", **scene, config=tiny_config())
    # "tiny: starting over: the inputs changed since the checkpoint (frames, masks, flow or homographies); ignoring ..."
    assert "starting over: the inputs changed since the checkpoint" in package_log.text
    assert "resuming" not in package_log.text


def test_checkpoint_of_other_settings_starts_over_saying_so(scene: dict, monkeypatch, package_log):
    kill_after_first_checkpoint(scene, monkeypatch)
    package_log.clear()
    train_and_render("tiny", **scene, config=tiny_config(learning_rate=0.002))
    # "tiny: starting over: the settings or the model's parameters changed since the checkpoint; ignoring ..."
    assert "starting over: the settings or the model's parameters changed since the checkpoint" in package_log.text
    assert "resuming" not in package_log.text


def test_checkpoint_of_another_model_layout_starts_over_instead_of_failing_to_load(scene: dict, monkeypatch,
                                                                                   package_log):
    """Same settings, same inputs, but the code's model has other parameters than the checkpoint's (a release
    that reshapes the network): the run starts over, it does not die in load_state_dict."""
    kill_after_first_checkpoint(scene, monkeypatch)
    real_build = train_loop.build_model

    def reshaped_model(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.net.extra_head = torch.nn.Conv2d(8, 1, 1)
        return model

    monkeypatch.setattr(train_loop, "build_model", reshaped_model)
    package_log.clear()
    run_train("tiny", **training_inputs(scene), config=tiny_config())
    assert "starting over: the settings or the model's parameters changed since the checkpoint" in package_log.text
    assert "resuming" not in package_log.text


def test_checkpoint_resumes_when_only_a_rendering_switch_changed(scene: dict, monkeypatch, package_log):
    kill_after_first_checkpoint(scene, monkeypatch)
    package_log.clear()
    train_and_render("tiny", **scene, config=tiny_config(claim_effects=False, fit_alpha=False, detail_transfer=False,
                                                  refine_alpha=False))
    assert "resuming" in package_log.text
    assert "starting over" not in package_log.text


def test_the_canvas_settings_count_in_the_fingerprint_only_with_a_canvas(scene: dict):
    """A network-background run is resumed whatever the canvas's settings say, and the effect reach its starting
    plate was made with; a canvas run is not."""
    from omnimatte.train.checkpoint import config_fingerprint

    video = train_module.load_video("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                    scene["masks_dir"], ["square"], 4, torch.device("cpu"), canvas_plate=True)
    for background, same in (("network", True), ("canvas", False)):
        prints = []
        for fraction, weight, reach in ((0.1, 0.25, 2.0), (0.5, 0.25, 2.0), (0.1, 1.0, 2.0), (0.1, 0.25, 3.0)):
            config = tiny_config(background=background, canvas_learning_rate_fraction=fraction,
                                 canvas_weight_once_reached=weight)
            reaching = dataclasses.replace(video, effect_reach=reach)
            prints.append(config_fingerprint(config, reaching, train_loop.build_model(video, config, torch.device("cpu"))))
        assert all((prints[0] == other) == same for other in prints[1:])


def test_checkpoint_from_other_settings_is_not_resumed(scene: dict, monkeypatch):
    """A checkpoint of trained weights lies there; a run of other settings at learning rate 0 must end with its
    own untrained weights, not the checkpoint's."""
    kill_after_first_checkpoint(scene, monkeypatch)
    checkpoint = torch.load(scene["train_dir"] / "checkpoint.pt", weights_only=False)
    other = tiny_config(steps=5, checkpoint_every=2, learning_rate=0.0)
    video = train_module.load_video("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                    scene["masks_dir"], ["square"], other.trimap_band, torch.device("cpu"),
                                    canvas_plate=True)
    untrained = train_loop.start_training(video, other, torch.device("cpu")).model.state_dict()
    assert not all(torch.equal(checkpoint["model"][key], value) for key, value in untrained.items())
    train_and_render("tiny", **scene, config=other)
    final = torch.load(scene["train_dir"] / "model.pt")["model"]
    assert final.keys() == untrained.keys()
    for key, value in untrained.items():
        assert torch.equal(final[key], value), key


def test_nan_loss_stops_with_a_clear_message(scene: dict, monkeypatch):
    def broken_flow_loss(prediction, target, confidence):
        return (prediction * float("nan")).mean()

    monkeypatch.setattr(losses, "flow_loss", broken_flow_loss)
    with pytest.raises(StageError, match="loss became nan"):
        train_and_render("tiny", **scene, config=tiny_config())
    assert not scene["out_dir"].exists()


def test_object_with_empty_masks_everywhere_is_refused(scene: dict):
    write_frames(scene["masks_dir"] / "square", [np.zeros((H, W), np.uint8)] * T)
    with pytest.raises(StageError, match="empty mask on every frame"):
        train_and_render("tiny", **scene, config=tiny_config())


def test_mask_count_mismatch_is_refused(scene: dict):
    write_frames(scene["masks_dir"] / "square", [np.zeros((H, W), np.uint8)] * (T - 1))
    with pytest.raises(StageError, match="5 masks .* for 6 frames"):
        train_and_render("tiny", **scene, config=tiny_config())


def test_config_file_defaults_are_the_training_defaults():
    """config/config.yaml's train section (train.cpu too) and TrainConfig() agree, so the CLI by hand trains as the
    workflow does; CPU_SETTINGS is the one source of the CPU's settings."""
    repo = Path(__file__).resolve().parents[1]
    settings = yaml.safe_load((repo / "config" / "config.yaml").read_text())["train"]
    assert TrainConfig.from_dict(settings) == TrainConfig()
    assert settings["cpu"] == train_module.CPU_SETTINGS
    cpu = train_module.CPU_SETTINGS
    on_cpu = TrainConfig().for_device(torch.device("cpu"))
    assert {key: getattr(on_cpu, key) for key in cpu} == cpu
    assert TrainConfig().for_device(torch.device("cuda")).nf == 64


def test_a_setting_that_train_cpu_replaces_is_named_when_set(scene: dict, tmp_path: Path, package_log):
    """`train.steps: 30` in a person's config does not run on the CPU where train.cpu sets steps: the stage says so
    and which key to set; a setting left at its default, or set to what train.cpu gives, is not named."""
    config = TrainConfig(steps=30, nf=32, batch_size=2, device="cpu", checkpoint_every=100,
                         cpu={"steps": 3, "min_steps": 3, "max_steps": 3, "nf": 8, "batch_size": 2})
    assert config.set_but_replaced_on_cpu() == [("steps", 30, 3), ("nf", 32, 8)]  # min/max_steps, batch: not set
    assert TrainConfig(cpu={"steps": 800}).set_but_replaced_on_cpu() == []  # the default: nothing was set
    assert TrainConfig(steps=800, cpu={"steps": 800}).set_but_replaced_on_cpu() == []  # what runs is what was set
    summary = run_train("tiny", **{**training_inputs(scene), "train_dir": tmp_path / "train"}, config=config)
    assert summary["steps"] == 3
    warnings = [record.getMessage() for record in package_log.records if record.levelname == "WARNING"]
    assert "tiny: train.steps is 30 in the config, but train.cpu.steps (3) replaces it on the CPU: set train.cpu.steps " \
           "to change it here" in warnings
    assert any("train.nf is 32" in message for message in warnings)
    assert not any("batch_size" in message or "min_steps" in message for message in warnings)


def test_mask_schedule_drops_then_switches_off():
    """The authors' mask schedule: cut 10x below the threshold, off at twice that step (no floor after it)."""
    config = TrainConfig(steps=100, alpha_l1_off_fraction=0.2, lambda_mask=50.0, mask_threshold=0.02,
                         object_alpha_floor=0.0)
    weights = LossWeights(mask=50.0, alpha_l1=0.01)
    assert weights.update(4, epoch_steps=2, mask_error=0.5, config=config) == []
    assert weights.mask == 50.0 and weights.waiting_for_mask_threshold()
    assert weights.update(5, epoch_steps=2, mask_error=0.01, config=config) == []  # mid-epoch
    changes = weights.update(6, epoch_steps=2, mask_error=0.01, config=config)
    assert weights.mask == pytest.approx(5.0) and weights.mask_rolloff_step == 6
    assert changes == ["mask term cut to 5 (its error 0.01 fell below 0.02); off at step 12"]
    assert not weights.waiting_for_mask_threshold()  # from now on the schedule reads nothing back
    weights.update(10, epoch_steps=2, mask_error=None, config=config)
    assert weights.mask == pytest.approx(5.0)
    assert weights.update(12, epoch_steps=2, mask_error=None, config=config) == ["mask term off"]
    assert weights.mask == 0.0 and weights.alpha_l1 == 0.01
    changes = weights.update(20, epoch_steps=2, mask_error=None, config=config)
    assert weights.alpha_l1 == 0.0 and changes[0].startswith("alpha L1 term off at step 20 (epoch 10, 20% of")
    assert weights.phases_done(20, config) and not weights.phases_done(20, replace(config, final_learning_rate_fraction=0.5))


def test_a_mask_term_that_never_meets_its_threshold_is_cut_by_half_the_l1_switch():
    """So that every phase runs in a run of any length: off by the L1 switch, whatever its error."""
    config = TrainConfig(steps=100, alpha_l1_off_fraction=0.2, object_alpha_floor=0.0)
    weights = LossWeights(mask=50.0, alpha_l1=0.01)
    log, done = [], []
    for step in range(1, 21):
        log += weights.update(step, 2, 0.5 if step % 2 == 0 else None, config)
        done.append(weights.phases_done(step, config))
    assert log == ["mask term cut to 5 (half the alpha L1 switch, whatever its error); off at step 20",
                   "alpha L1 term off at step 20 (epoch 10, 20% of the expected 100 steps)", "mask term off"]
    assert done == [False] * 19 + [True]


def test_the_object_floor_takes_over_from_the_mask_term_and_holds_only_a_vanishing_layer():
    config = TrainConfig(lambda_mask=50.0, mask_threshold=0.02, object_alpha_floor=0.5)
    weights = LossWeights(mask=50.0, alpha_l1=0.01)
    weights.update(6, epoch_steps=2, mask_error=0.01, config=config)
    assert weights.mask == pytest.approx(5.0) and weights.object_floor == 0.0
    changes = weights.update(12, epoch_steps=2, mask_error=None, config=config)
    assert changes == ["mask term off; each layer's mean alpha inside its mask is held at 0.5 or more (weight 5)"]
    assert weights.mask == 0.0 and weights.object_floor == pytest.approx(5.0)
    # Two layers over four pixels, the first three inside both masks, the last outside (an effect).
    trimaps = torch.tensor([1.0, 1.0, 1.0, -1.0]).view(1, 1, 1, 1, 4).repeat(1, 2, 1, 1, 1)
    holds_its_object = torch.tensor([1.0, 1.0, 0.0, 1.0])  # an over-sized mask's edge may go, an effect may come
    vanishing = torch.tensor([0.1, 0.1, 0.1, 0.0])
    alpha = torch.stack((holds_its_object, vanishing)).view(1, 2, 1, 1, 4).requires_grad_()
    term = train_objective.mask_term(alpha, trimaps, weights, config)
    assert term.item() == pytest.approx(5.0 * (0.5 - 0.1) / 2)
    term.backward()
    assert torch.all(alpha.grad[0, 0] == 0)  # the layer that holds its object is left alone
    assert torch.all(alpha.grad[0, 1, 0, 0, :3] < 0) and alpha.grad[0, 1, 0, 0, 3] == 0  # the other pushed up inside
    authors = LossWeights(mask=0.0, alpha_l1=0.0, mask_rolloff_step=6)
    assert train_objective.mask_term(alpha, trimaps, authors, TrainConfig()).item() == 0.0
    with pytest.raises(ValueError, match="train.object_alpha_floor is 1.5"):
        TrainConfig(object_alpha_floor=1.5)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_alpha_l1_switch_is_a_fraction_of_the_expected_length_whatever_the_clip(device: str):
    """Epochs would put it at step 15,000 for 300 frames at 4 pairs a step and at step 1200 for 24 frames: placed by
    the expected length, every clip reaches it at the same step, and the learning rate's decay after it."""
    config = TrainConfig().for_device(torch.device(device))
    switch = train_module.alpha_l1_off_step(config)
    assert switch == round(config.alpha_l1_off_fraction * config.steps) < config.steps
    for frames in (24, 300):
        weights = LossWeights(mask=0.0, alpha_l1=config.lambda_alpha_l1)
        epoch_steps = train_module.steps_per_epoch(frames, config.batch_size)
        for step in range(1, config.steps + 1):
            weights.update(step, epoch_steps, None, config)
            assert (weights.alpha_l1 == 0.0) == (step >= switch)


def test_learning_rate_holds_until_the_switch_then_decays_to_its_fraction():
    config = TrainConfig(steps=100, final_learning_rate_fraction=0.1, alpha_l1_off_fraction=0.6)
    factors = [train_schedule.learning_rate_factor(step, config) for step in range(130)]
    assert factors[:61] == [1.0] * 61
    assert all(a >= b for a, b in itertools.pairwise(factors))
    assert factors[99] == pytest.approx(0.1, abs=0.01)
    assert factors[100:] == [pytest.approx(0.1)] * 30  # a run the stopping rule extends stays at the final rate
    assert train_schedule.learning_rate_factor(99, replace(config, final_learning_rate_fraction=1.0)) == 1.0


def test_the_decay_lowers_the_network_rate_and_leaves_the_canvas_its_own(scene: dict, tmp_path: Path, monkeypatch):
    """The decay settles the network's layers; the canvas keeps sharpening at its fraction of the full rate."""
    video = train_module.load_video("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                    scene["masks_dir"], ["square"], 4, torch.device("cpu"), canvas_plate=True)
    config = tiny_config(steps=10, final_learning_rate_fraction=0.1, alpha_l1_off_fraction=0.5,
                         canvas_learning_rate_fraction=0.3)
    rates = []
    step = train_loop.optimisation_step

    def recording(model, step_fn, optimizer, *args):
        rates.append([group["lr"] for group in optimizer.param_groups])
        return step(model, step_fn, optimizer, *args)

    monkeypatch.setattr(train_loop, "optimisation_step", recording)
    run = train_loop.train_model("tiny", video, config, tmp_path / "decay.pt", torch.device("cpu"))
    factors = [train_schedule.learning_rate_factor(index, config) for index in range(10)]
    assert factors[0] == 1.0 and factors[-1] < 0.2
    assert rates == [[pytest.approx(1e-3 * factor), pytest.approx(1e-3 * 0.3)] for factor in factors]
    assert run.history[-1]["learning_rate"] == pytest.approx(1e-3 * factors[-1])


def test_a_long_clip_switches_the_l1_term_off_in_a_short_cpu_run(tmp_path: Path, package_log):
    """300 frames through load_video and the loop with a 20-step budget: the log says where the switch comes,
    and the losses logged after it have the L1 term off."""
    frames = 300
    rng = np.random.default_rng(1)
    ground = (rng.random((24, 32 + frames, 3)) * 255).astype(np.uint8)
    write_frames(tmp_path / "frames", [ground[:, t:t + 32] for t in range(frames)])
    masks = np.zeros((frames, 24, 32), np.uint8)
    masks[:, 8:16, 10:18] = 255
    write_frames(tmp_path / "masks" / "box", list(masks))
    (tmp_path / "flow").mkdir()
    flow = np.zeros((frames - 1, 24, 32, 2), np.float32)
    save_npy(tmp_path / "flow" / "forward.npy", flow)
    save_npy(tmp_path / "flow" / "backward.npy", flow)
    save_npy(tmp_path / "flow" / "confidence_forward.npy", np.ones((frames - 1, 24, 32), np.float32))
    (tmp_path / "homography").mkdir()
    save_npy(tmp_path / "homography" / "homographies.npy",
             np.stack([np.array([[1, 0, t], [0, 1, 0], [0, 0, 1]], float) for t in range(frames)]))
    save_json(tmp_path / "homography" / "canvas.json", {"width": 32 + frames, "height": 24})
    config = TrainConfig(steps=20, min_steps=20, max_steps=20, batch_size=4, nf=4, device="cpu", cpu={},
                         checkpoint_every=100)
    video = train_module.load_video("long", tmp_path / "frames", tmp_path / "flow", tmp_path / "homography",
                                    tmp_path / "masks", ["box"], 2, torch.device("cpu"),
                                    canvas_plate=config.background == "canvas")
    history = train_module.train_model("long", video, config, tmp_path / "checkpoint.pt", torch.device("cpu")).history
    log_text = package_log.text
    assert "about 20 steps expected (20 to 20): the alpha L1 term off after step 16;" in log_text
    assert "alpha L1 term off at step 16 (epoch 0, 80% of the expected 20 steps)" in log_text
    assert [row["lambda_alpha_l1"] for row in history if row["step"] >= 16] == [0.0] * 5
    assert all(row["lambda_alpha_l1"] > 0 for row in history if row["step"] < 16)


def test_bf16_autocast_on_the_cpu_trains_and_keeps_the_alpha_head_in_float32(scene: dict):
    """bf16 autocast runs on the CPU too; the output heads stay float32 so a faint alpha keeps its gradient."""
    from omnimatte.model import OmnimatteUNet

    net = OmnimatteUNet(nf=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rgba, flow = net(torch.randn(2, 16, 32, 32))
    assert rgba.dtype == torch.float32 and flow.dtype == torch.float32
    summary = train_and_render("tiny", **scene, config=tiny_config(bf16=True))
    assert np.isfinite(summary["final_losses"]["total"])


def test_the_authors_options_train_and_render(scene: dict):
    """The authors' choices the defaults leave, all at once: the network background, BatchNorm, the tanh alpha,
    coverage sparsity, no camera adjustment, plate matte, alpha fit, effect claim, object floor or learning-rate decay,
    and plain bilinear alpha upsampling below the working resolution."""
    summary = train_and_render("tiny", **scene, config=tiny_config(
        background="network", norm="batch", alpha_activation="tanh", alpha_reg_target="coverage",
        camera_adjustment=False, background_match_threshold=0.0, fit_alpha=False, claim_effects=False, object_alpha_floor=0.0,
        final_learning_rate_fraction=1.0,
        alpha_l1_off_fraction=0.8, refine_alpha=False, scale=0.5))
    assert read_frames(scene["out_dir"] / "layers" / "square" / "rgba", mode="rgba").shape == (T, H, W, 4)
    assert np.isfinite(summary["final_losses"]["total"])
    with pytest.raises(ValueError, match="train.background is 'median'; choose from canvas, network"):
        TrainConfig(background="median")


def test_on_grainy_footage_training_takes_the_background_as_shown_above_the_clips_noise(tmp_path: Path):
    """Training's background match rises to three times the clip's noise (measured against the starting plate where
    no object reaches), so that bare ground still shows the background; on clean frames it is the setting."""
    config = tiny_config()
    shown = {}
    for noise in (0.0, 12.0):
        scene = write_scene(tmp_path / f"noise{noise:g}", pan=2, noise=noise)
        video = train_module.load_video("s", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                        scene["masks_dir"], scene["object_names"], config.trimap_band,
                                        torch.device("cpu"), canvas_plate=True)
        match = train_loop.training_match_threshold(video, config)
        model = train_loop.start_training(video, config, torch.device("cpu")).model
        assert model.background_match_threshold == match
        ground = video.masks.sum(1) == 0  # (T, 1, H, W): the bare ground (the plate is exact there without noise)
        plate_view = model.view_background(model.render_background(), video.background_grid, None)
        difference = colour_difference(video.frames, plate_view)
        shown[noise] = float((difference <= match)[ground].float().mean())
        summary = run_train("s", **training_inputs(scene), config=config)
        assert summary["background_match_threshold"] == pytest.approx(match, abs=1e-5)
        assert summary["background_noise"] == pytest.approx(video.background_noise, abs=1e-5)
        if noise:
            assert match == pytest.approx(3 * video.background_noise) and match > 0.04
            with_setting = float((difference <= config.background_match_threshold)[ground].float().mean())
            assert with_setting < 0.7 < shown[noise]  # the setting alone takes most grain for something more
        else:
            assert video.background_noise < 0.01 and match == config.background_match_threshold
    assert shown[0.0] > 0.95
    off = tiny_config(background_match_threshold=0.0)
    assert train_loop.training_match_threshold(video, off) == 0.0  # off stays off, whatever the noise


def test_the_canvas_learns_at_its_fraction_of_the_learning_rate(scene: dict, tmp_path: Path):
    """The canvas background takes train.canvas_learning_rate_fraction of the rate: at 0 it stays the plate it
    started from (a pyramid of four grids too) while the network learns; at the default it moves, less than
    at the full rate."""
    video = train_module.load_video("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                    scene["masks_dir"], ["square"], 4, torch.device("cpu"), canvas_plate=True)
    moved = {}
    for fraction, levels in ((0.0, 4), (0.1, 1), (1.0, 1)):
        config = tiny_config(canvas_learning_rate_fraction=fraction, canvas_levels=levels, checkpoint_every=100)
        state = train_loop.start_training(video, config, torch.device("cpu"))
        assert [group["lr"] for group in state.optimizer.param_groups] == [1e-3, 1e-3 * fraction]
        first_weight = state.model.net.encoder[0][0].weight.detach().clone()
        model = train_loop.train_model("tiny", video, config, tmp_path / f"{fraction}.pt", torch.device("cpu")).model
        assert len(model.canvas.grids) == levels
        assert not torch.equal(model.net.encoder[0][0].weight, first_weight)
        moved[fraction] = (model.render_background() - video.plate).abs().max().item()
    assert moved[0.0] == 0.0
    assert 0.0 < moved[0.1] < moved[1.0]
    with pytest.raises(ValueError, match="train.canvas_levels is 0; it must be at least 1"):
        TrainConfig(canvas_levels=0)


def test_the_canvas_learns_each_pixel_from_the_frames_before_an_object_reaches_it(scene: dict, tmp_path: Path):
    """The square reaches the canvas pixels ahead of it in later frames (camera.first_reached); a batch's pixels
    teach the canvas fully before then and at train.canvas_weight_once_reached after. Where every pixel is
    reached from the first frame and none counts as showing the background, a weight of 0 leaves the canvas
    the plate it started from, even at the full rate, while the network learns; at 1 the canvas moves."""
    import dataclasses

    from omnimatte.train.batch import Batch

    video = train_module.load_video("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                    scene["masks_dir"], ["square"], 4, torch.device("cpu"), canvas_plate=True)
    assert video.canvas_first_reached.shape == (1, 1, *video.canvas_size)
    assert set(video.canvas_first_reached.unique().tolist()) == {2.0, 3.0, 4.0, 5.0, float(T)}
    config = tiny_config(canvas_weight_once_reached=0.25, batch_size=4, jitter_rate=0.0)
    model = train_loop.build_model(video, config, torch.device("cpu"))
    batch = Batch(video=video, model=model, indices=torch.arange(4), config=config, generator=torch.Generator().manual_seed(0))
    weight = batch.canvas_weight[:, 0]
    assert set(weight.unique().tolist()) == {0.25, 1.0}
    assert (weight[batch.frame_indices < 2] == 1.0).all()  # no pixel is reached before frame 2
    # Without the jitter each pixel sees the canvas where its homography puts it: the map's pixel there.
    height, width = video.canvas_first_reached.shape[2:]
    column = (((batch.background_grid[..., 0] + 1) * width - 1) / 2).round().long().clamp(0, width - 1)
    row = (((batch.background_grid[..., 1] + 1) * height - 1) / 2).round().long().clamp(0, height - 1)
    reached = video.canvas_first_reached[0, 0][row, column]
    expected = torch.where(batch.frame_indices.view(-1, 1, 1) < reached, 1.0, 0.25)
    assert (weight == expected).float().mean() > 0.99  # all but where a position rounds either way
    every_frame = tiny_config(canvas_weight_once_reached=1.0)
    assert Batch(video=video, model=model, indices=torch.arange(4), config=every_frame,
                 generator=torch.Generator()).canvas_weight is None

    reached_at_once = dataclasses.replace(video, canvas_first_reached=torch.zeros_like(video.canvas_first_reached))
    moved = {}
    for weight in (0.0, 1.0):
        config = tiny_config(canvas_learning_rate_fraction=1.0, canvas_weight_once_reached=weight, checkpoint_every=100,
                             background_match_threshold=0.0)  # no frame pixel counts as showing the background
        first_weight = train_loop.start_training(video, config, torch.device("cpu")).model.net.encoder[0][0].weight
        model = train_loop.train_model("tiny", reached_at_once, config, tmp_path / f"{weight}.pt",
                                       torch.device("cpu")).model
        assert not torch.equal(model.net.encoder[0][0].weight, first_weight.detach())
        moved[weight] = (model.render_background() - video.plate).abs().max().item()
    assert moved[0.0] == 0.0 < moved[1.0]
    with pytest.raises(ValueError, match="train.canvas_weight_once_reached is 1.5; it must be in"):
        TrainConfig(canvas_weight_once_reached=1.5)


def test_below_the_working_resolution_a_zoomed_crop_of_a_frame_matches_the_canvas_seen_through_it(tmp_path: Path):
    """At scale 0.5 a training pixel spans 2 x 2 working pixels, in the frame and in the canvas alike: an unzoomed
    batch is the frames area-averaged, and in zoomed crops the ground (which the plate holds exactly) is the
    model's view of its canvas to within rounding, so the canvas has nothing to sharpen or blur to fit it. The
    ground pans an odd number of pixels a frame, so the frames' 2 x 2 blocks straddle the canvas's."""
    from omnimatte.train.batch import Batch

    scene = write_scene(tmp_path, pan=3)
    video = train_module.load_video("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                    scene["masks_dir"], ["square"], 4, torch.device("cpu"), scale=0.5,
                                    canvas_plate=True)
    assert video.footprint == 2
    config = tiny_config(scale=0.5, batch_size=3, camera_adjustment=False, background_match_threshold=0.0)
    model = train_loop.build_model(video, config, torch.device("cpu"))
    assert model.canvas_footprint == 2
    unzoomed = Batch(video=video, model=model, indices=torch.arange(3), config=replace(config, jitter_rate=0.0),
                     generator=torch.Generator().manual_seed(0))
    assert torch.allclose(unzoomed.image, video.frames[unzoomed.frame_indices], atol=1e-5)
    zoomed = Batch(video=video, model=model, indices=torch.arange(3), config=replace(config, jitter_rate=1.0,
                   jitter_max_scale=1.8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        background = model(zoomed.inputs, zoomed.background_grid, zoomed.background_flow)["background"]
    ground = zoomed.trimaps.amax(1) < 0  # clear of the square by the trimap's band
    assert ground.float().mean() > 0.5
    assert (background - zoomed.image).abs().amax(1, keepdim=True)[ground].max() < 1e-3


def test_training_below_the_working_resolution_renders_at_it(scene: dict):
    """At scale 0.5 the network sees half-size tensors, flow in half-size pixels, and the output keeps the size."""
    video = train_module.load_video("tiny", scene["frames_dir"], scene["flow_dir"], scene["homography_dir"],
                                    scene["masks_dir"], ["square"], 4, torch.device("cpu"), scale=0.5,
                                    canvas_plate=False)
    assert video.frames.shape == (T, 3, H // 2, W // 2)
    assert video.output_frames.shape == (T, 3, H, W)
    assert video.canvas_size == (H // 2, (W + 16) // 2)
    assert video.masks.shape == (T, 1, 1, H // 2, W // 2)
    assert set(video.masks.unique().tolist()) == {0.0, 1.0}
    # The square moves 3 px a frame at full size, so 1.5 training pixels; the ground -2, so -1.
    assert video.flow[0, 0, 10, 10].item() == pytest.approx(1.5)
    assert video.flow[0, 0, 2, 2].item() == pytest.approx(-1.0)
    assert video.background_flow[0, 0].mean().item() == pytest.approx(-1.0, abs=1e-4)
    # The last frame's input flow is its backward flow reversed.
    assert video.flow[-1, 0, 10, 10].item() == pytest.approx(1.5)
    assert video.confidence[-1].abs().sum().item() == 0
    # The coarse canvas grid is the fine one averaged: the same canvas positions.
    assert torch.allclose(video.background_grid[2], F.avg_pool2d(video.output_grid[2].permute(2, 0, 1), 2).permute(1, 2, 0))

    summary = train_and_render("tiny", **scene, config=tiny_config(scale=0.5))
    assert read_frames(scene["out_dir"] / "layers" / "square" / "rgba", mode="rgba").shape == (T, H, W, 4)
    assert read_frames(scene["out_dir"] / "background").shape == (T, H, W, 3)
    assert summary["psnr_output"] > summary["psnr_model"]  # detail transfer at the working resolution


def test_compiled_training_on_the_cpu_trains_and_renders(scene: dict):
    """train.compile wraps the model in torch.compile (inductor, which on the CPU needs a C++ compiler);
    the GPU path uses it, so it runs here too, with bf16 autocast, on a few steps."""
    summary = train_and_render("tiny", **scene, config=tiny_config(compile=True, bf16=True, steps=4))
    assert read_frames(scene["out_dir"] / "layers" / "square" / "rgba", mode="rgba").shape == (T, H, W, 4)
    assert np.isfinite(summary["final_losses"]["total"])


def test_the_effect_claim_and_the_stray_cut_are_handed_what_the_background_fit_cannot_explain(scene: dict,
                                                                                              monkeypatch):
    """With the background fit's settings, load_video marks per frame what moves over the background by itself,
    what of it moves as a whole and what fits nothing (none of them on a textured ground panning under one
    homography), and rendering hands each frame's maps to the effect claim and the stray cut; without them nothing
    is fitted."""
    from omnimatte.background_fit import BackgroundFitSettings
    from omnimatte.render import RenderSettings, pipeline
    from omnimatte.render.effect_claim import UnexplainedBackground

    paths = (scene["frames_dir"], scene["flow_dir"], scene["homography_dir"], scene["masks_dir"], ["square"], 4,
             torch.device("cpu"))
    unfitted = train_module.load_video("tiny", *paths, canvas_plate=True)
    assert unfitted.unexplained is None and unfitted.moves_coherently is None and unfitted.plate_views is None
    video = train_module.load_video("tiny", *paths, canvas_plate=True, background_fit=BackgroundFitSettings())
    for fitted in (video.unexplained.moves_by_itself, video.unexplained.misfit, video.moves_coherently, video.crossed):
        assert fitted.shape == (T, H, W) and fitted.dtype == torch.bool
        assert fitted.float().mean() < 0.01
    assert video.plate_views.shape == (T, 3, H, W) and video.plate_views.dtype == torch.uint8
    # Nothing moves by itself: the plate is the ground the frames show, to within their noise.
    assert (video.plate_views.float() / 127.5 - 1 - video.output_frames).abs().mean() < 0.05
    marked = replace(video, unexplained=UnexplainedBackground(video.unexplained.moves_by_itself.clone(),
                                                              video.unexplained.misfit.clone()),
                     moves_coherently=video.moves_coherently.clone())
    marked.unexplained.moves_by_itself[2, :10] = True
    marked.unexplained.misfit[2, -10:] = True
    marked.moves_coherently[2, 5:12] = True
    handed, cut_with = [], []

    def claim(frame, background, rgb, alpha, motion, unexplained):
        handed.append(unexplained)
        return rgb, alpha

    def cut(frame, background, alpha, masks, moves_coherently):
        cut_with.append(moves_coherently)
        return alpha

    monkeypatch.setattr(pipeline, "claim_effects", claim)
    monkeypatch.setattr(pipeline, "cut_strays", cut)
    config = tiny_config()
    model = train_loop.build_model(video, config, torch.device("cpu")).eval()
    with torch.no_grad():
        pipeline.render_frame(pipeline.render_pass(model, marked, RenderSettings.from_config(config)), 2)
    assert len(handed) == 1
    assert torch.equal(handed[0].moves_by_itself, marked.unexplained.moves_by_itself[2])
    assert torch.equal(handed[0].misfit, marked.unexplained.misfit[2])
    assert len(cut_with) == 1 and torch.equal(cut_with[0], marked.moves_coherently[2])


def test_with_the_sampled_background_each_frame_is_rendered_over_the_median_of_the_frames(scene: dict):
    """sample_background: the pass's background for a frame is what the sampled background made for it (not the
    learnt canvas's view), close to the frame where it shows the ground free on this noiseless clip; one
    SampledBackgrounds serves every pass of a model with the same refine_alpha."""
    from omnimatte.render import RenderSettings, SampledBackgrounds, frame_background, render_frame, render_pass

    paths = (scene["frames_dir"], scene["flow_dir"], scene["homography_dir"], scene["masks_dir"], ["square"], 4,
             torch.device("cpu"))
    video = train_module.load_video("tiny", *paths, canvas_plate=True)
    config = tiny_config()
    model = train_loop.build_model(video, config, torch.device("cpu")).eval()
    with torch.no_grad():  # a learnt canvas that is plainly wrong (mid grey) and a layer that holds nothing
        model.canvas.grids[0].fill_(0.0)
        model.net.to_output.weight[3].zero_()
        model.net.to_output.bias[3].fill_(-10.0)
    settings = replace(RenderSettings.from_config(config), sample_background=True, background_detail=False)
    sampled = SampledBackgrounds(model, video)
    with torch.no_grad():
        shared = render_pass(model, video, settings, sampled)
        assert render_pass(model, video, settings.without("detail_transfer"), sampled).sampled is shared.sampled
        t = 3
        frame = render_frame(shared, t)
        learnt = frame_background(model, video, t, shared.canvas)[0]
    image, votes = shared.sampled.frame(t)
    assert torch.allclose(frame.background[0].permute(1, 2, 0), torch.from_numpy(image) * 2 - 1, atol=1e-6)
    target = video.output_frames[t].permute(1, 2, 0).numpy() * 0.5 + 0.5
    free = shared.sampled.free[t] & (votes >= 3)
    assert free.mean() > 0.5
    off = np.abs(image[free] - target[free]).mean()  # the ground's texture carried in from frames a sub-pixel pan apart
    assert off < 0.03
    assert np.abs(learnt[0].permute(1, 2, 0).numpy() * 0.5 + 0.5 - target)[free].mean() > 4 * off
