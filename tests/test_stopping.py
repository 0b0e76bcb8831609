"""The stopping rule on a tiny clip: training stops once its layers stop changing, never before every phase of the
schedule has run, by max_steps at the latest; a resumed run stops where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnimatte.benchmark import prepare_synthetic
from omnimatte.train import TrainConfig, run_train
from omnimatte.train import loop as train_loop
from omnimatte.train.curves import write_loss_curves
from omnimatte.train.objective import PROGRESS_LABELS
from omnimatte.train.schedule import alpha_l1_off_step, decay_end_step, mask_cut_deadline
from omnimatte.train.stopping import StoppingRule, WeightAverage, check_frame_indices, measure_change

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """A tiny synthetic clip (a ball bouncing with its shadow), through the flow and homography stages."""
    work = tmp_path_factory.mktemp("clip")
    synthetic, video, _ = prepare_synthetic(work, "bounce", 8, 160, 96, 4, CPU, "none", canvas_plate=True)
    return {"work": work, "video": video, "objects": synthetic.object_names}


def config(**changes) -> TrainConfig:
    """30 expected steps: the mask term cut by step 7 and off by 14, the L1 term off at 15, the network's learning
    rate down along a cosine from there to a ten-thousandth at step 30 (the last phase); a check every 5 steps, of the
    last step's weights (no average: a run this short has no noise to average away). The canvas stays its starting
    plate (the decay leaves it its own rate), so only the network's settling is seen."""
    settings = dict(steps=30, max_steps=60, min_steps=0, batch_size=2, nf=8, trimap_band=4, device="cpu", cpu={},
                    canvas_learning_rate_fraction=0.0,
                    checkpoint_every=1000, alpha_l1_off_fraction=0.5, final_learning_rate_fraction=1e-4,
                    stop_check_every=5, stop_check_frames=3, stop_patience=2,
                    stop_alpha_tolerance=1e-3, stop_reconstruction_tolerance=1e-4, stop_average_decay=0.0)
    settings.update(changes)
    return TrainConfig(**settings)


def test_the_schedule_places_every_phase_by_fractions_of_the_expected_length():
    settings = config()
    assert (mask_cut_deadline(settings), alpha_l1_off_step(settings), decay_end_step(settings)) == (7, 15, 30)
    longer = config(steps=300, max_steps=600)
    assert (mask_cut_deadline(longer), alpha_l1_off_step(longer), decay_end_step(longer)) == (75, 150, 300)
    assert decay_end_step(config(final_learning_rate_fraction=1.0)) == 0  # no decay: nothing to wait for


def test_check_frames_spread_over_the_clip():
    assert check_frame_indices(48, 6) == [0, 9, 19, 28, 38, 47]
    assert check_frame_indices(4, 6) == [0, 1, 2, 3]
    assert check_frame_indices(9, 1) == [4]


def test_the_change_is_each_layers_share_of_alpha_and_the_reconstructions_mean():
    before = torch.zeros(2, 2, 1, 4, 4)
    before[:, 0, :, :2] = 1.0  # layer 0: 16 of alpha; layer 1: 2
    before[:, 1, :, 0, 0] = 1.0
    after = before.clone()
    after[0, 1, :, 0, 0] = 0.0  # half of layer 1's alpha goes
    rgb = torch.zeros(2, 3, 4, 4)
    change = measure_change(after, rgb + 0.2, before, rgb)
    assert change.alpha == pytest.approx(0.5)  # the largest share over the layers, not the mean
    assert change.reconstruction == pytest.approx(0.1)  # [-1, 1] colours, measured 0..1
    assert change.within(0.5, 0.1) and not change.within(0.4, 0.1) and not change.within(0.5, 0.09)
    assert change.layer_alpha == pytest.approx((0.0, 0.5))  # each layer's share, back to front


def test_the_rule_names_the_layers_still_moving(clip, tmp_path):
    """What the log and the ceiling's reason say: the layers whose alpha moved past the tolerance, largest first,
    and the reconstruction if it did; nothing once every change is within."""
    rule = StoppingRule(clip["video"], config(stop_alpha_tolerance=0.015, stop_reconstruction_tolerance=0.001),
                        train_loop.build_model(clip["video"], config(), CPU))
    assert rule.still_moving() == ""
    rule.checks = [{"step": 25, "alpha_change": 0.03, "reconstruction_change": 0.0005, "within": False,
                    "phases_done": True, "layer_alpha_change": {"walker": 0.012, "ball": 0.03, "dog": 0.02}}]
    assert rule.still_moving() == "ball's layer 3.0% of its alpha, dog's layer 2.0% of its alpha"
    rule.checks[-1].update(alpha_change=0.01, reconstruction_change=0.002,
                           layer_alpha_change={"walker": 0.01, "ball": 0.005, "dog": 0.0})
    assert rule.still_moving() == "the reconstruction 0.00200"
    rule.checks[-1].update(reconstruction_change=0.0)
    assert rule.still_moving() == ""
    # The loss plot draws each layer's change beside the largest, and a check without them (an older checkpoint's).
    history = [{"step": step, "seconds": step / 10, **{name: 0.1 for name in PROGRESS_LABELS}, "lambda_mask": 0.0,
                "lambda_alpha_l1": 0.0, "learning_rate": 1e-3} for step in (25, 50)]
    checks = [dict(rule.checks[-1], step=50), {"step": 25, "alpha_change": 0.02, "reconstruction_change": 0.001,
                                               "within": False, "phases_done": True}]
    write_loss_curves(history, tmp_path / "losses.csv", tmp_path / "losses.png", checks[::-1], 0.015, 0.001)
    assert (tmp_path / "losses.png").stat().st_size > 0


def test_the_average_keeps_its_decay_of_itself_each_step(clip):
    model = train_loop.build_model(clip["video"], config(), CPU)
    average = WeightAverage(model, 0.75)
    start = [parameter.detach().clone() for parameter in model.parameters()]
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    average.follow(model)
    for averaged, before in zip(average.model.parameters(), start):
        assert torch.allclose(averaged, before + 0.25)
        assert not averaged.requires_grad
    last_step = WeightAverage(model, 0.0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2.0)
    last_step.follow(model)
    assert all(torch.equal(mine, theirs) for mine, theirs in zip(last_step.model.parameters(), model.parameters()))


def wander(clip: dict, decay: float, drift: float, steps: int = 60) -> list[dict]:
    """The rule's checks on weights that jitter around where they started by 2 % at each step (a constant learning
    rate's noise), drifting by `drift` of themselves a step besides; a check every 5 steps."""
    settings = config(stop_average_decay=decay, max_steps=steps)
    model = train_loop.build_model(clip["video"], settings, CPU)
    rule = StoppingRule(clip["video"], settings, model)
    start = [parameter.detach().clone() for parameter in model.parameters()]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for step in range(1, steps + 1):
            for parameter, origin in zip(model.parameters(), start):
                noise = torch.randn(origin.shape, generator=generator) * 0.02
                parameter.copy_(origin * (1 + drift * step + noise))
            rule.follow(model)
            if rule.due(step):
                rule.check(step, 0.0, model, phases_done=True)
    return rule.checks


def test_the_checks_see_the_weights_drift_and_not_the_steps_noise(clip):
    """Checks of the last step's weights measure each step's noise however long the run (the layers never settle);
    checks of the average measure it shrunk, settle once the average has caught up, and still see a drift."""
    raw = wander(clip, decay=0.0, drift=0.0)
    averaged = wander(clip, decay=0.9, drift=0.0)
    drifting = wander(clip, decay=0.9, drift=0.01)
    late = slice(len(raw) // 2, None)
    noise = min(check["alpha_change"] for check in raw[late])
    assert max(check["alpha_change"] for check in averaged[late]) < noise / 2
    assert min(check["alpha_change"] for check in drifting[late]) > 2 * max(check["alpha_change"]
                                                                            for check in averaged[late])


def train(clip: dict, settings: TrainConfig, checkpoint: Path) -> train_loop.TrainingRun:
    return train_loop.train_model("tiny", clip["video"], settings, checkpoint, CPU)


def test_training_stops_once_the_layers_stop_changing_and_not_before_every_phase(clip, tmp_path):
    run = train(clip, config(), tmp_path / "a.pt")
    assert run.stop_reason.startswith("settled")
    assert 35 <= run.stop_step < 60  # the learning rate's decay, the last phase, ends at step 30
    last = run.history[-1]
    assert last["step"] == run.stop_step and last["lambda_mask"] == 0 and last["lambda_alpha_l1"] == 0
    checks = {check["step"]: check for check in run.checks}
    assert list(checks) == list(range(10, run.stop_step + 1, 5))  # the first check only renders
    # While the schedule ran at its full learning rate the layers moved past the tolerance; they stopped
    # moving once it had decayed, and training stopped at the first check that found them still for two
    # checks in a row after every phase had run.
    assert checks[10]["alpha_change"] > 1e-3
    assert [check["phases_done"] for check in run.checks] == [check["step"] >= 30 for check in run.checks]
    still = [step for step in checks if step >= 30 and checks[step]["within"] and checks[step - 5]["within"]
             and checks[step - 5]["phases_done"]]
    assert still[0] == run.stop_step

    permissive = train(clip, config(stop_alpha_tolerance=1e9, stop_reconstruction_tolerance=1e9), tmp_path / "b.pt")
    assert permissive.stop_step == 35  # within from the first check: it waits for the schedule and two checks after

    floor = train(clip, config(stop_alpha_tolerance=1e9, stop_reconstruction_tolerance=1e9, min_steps=41),
                  tmp_path / "c.pt")
    assert floor.stop_step == 45  # the first check from min_steps


def test_layers_still_moving_train_on_to_the_ceiling(clip, tmp_path):
    """At a constant learning rate (no decay) every phase has run by the L1 switch at step 15, but the layers go on
    moving by hundredths of their alpha between checks: training goes past the expected length, to max_steps."""
    run = train(clip, config(final_learning_rate_fraction=1.0, max_steps=42), tmp_path / "a.pt")
    assert run.stop_step == 42 and run.stop_reason.startswith("the ceiling: train.max_steps (42)")
    assert (f"(still moving at the last check: {clip['objects'][0]}'s layer {run.checks[-1]['alpha_change']:.1%} "
            "of its alpha") in run.stop_reason
    after_the_phases = [check for check in run.checks if check["phases_done"]]
    assert after_the_phases[0]["step"] == 15 and after_the_phases[-1]["step"] == 40
    assert all(check["alpha_change"] > 1e-3 and not check["within"] for check in after_the_phases)


class Killed(Exception):
    pass


def test_a_resumed_run_stops_where_an_uninterrupted_one_does(clip, tmp_path, monkeypatch):
    settings = config(checkpoint_every=10, stop_average_decay=0.5)  # the average, too, goes on where it was
    straight = train(clip, settings, tmp_path / "straight.pt")
    real_batch = train_loop.Batch
    calls = {"n": 0}

    def dying_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 24:  # killed during step 24, after the checkpoint at step 20 (and the checks up to it)
            raise Killed()
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(train_loop, "Batch", dying_batch)
    with pytest.raises(Killed):
        train(clip, settings, tmp_path / "resumed.pt")
    saved = torch.load(tmp_path / "resumed.pt", weights_only=False)
    assert saved["step"] == 20 and [check["step"] for check in saved["stopping"]["checks"]] == [10, 15, 20]
    monkeypatch.setattr(train_loop, "Batch", real_batch)
    resumed = train(clip, settings, tmp_path / "resumed.pt")
    assert resumed.stop_step == straight.stop_step and resumed.stop_reason == straight.stop_reason
    assert [check["within"] for check in resumed.checks] == [check["within"] for check in straight.checks]
    for mine, theirs in zip(resumed.checks, straight.checks):
        assert mine["alpha_change"] == pytest.approx(theirs["alpha_change"], rel=1e-4, abs=1e-7)


def test_the_stopping_settings_count_in_the_fingerprint(clip):
    from omnimatte.train.checkpoint import config_fingerprint

    model = train_loop.build_model(clip["video"], config(), CPU)
    prints = {json.dumps(config_fingerprint(config(**change), clip["video"], model))
              for change in ({}, {"max_steps": 61}, {"stop_patience": 3}, {"stop_alpha_tolerance": 0.01},
                             {"stop_check_every": 6}, {"min_steps": 1}, {"alpha_l1_off_fraction": 0.6},
                             {"stop_average_decay": 0.9})}
    assert len(prints) == 8


def test_the_stage_says_why_and_when_it_stopped(clip, tmp_path, package_log, capsys):
    work = clip["work"]
    summary = run_train("tiny", work / "frames", work / "flow", work / "homography", work / "masks", clip["objects"],
                        tmp_path / "train", config())
    stopping = json.loads((tmp_path / "train" / "summary.json").read_text())["stopping"]
    assert stopping == summary["stopping"] and summary["steps"] == stopping["step"] >= 30
    assert stopping["reason"].startswith("settled") and stopping["seconds"] > 0
    assert stopping["checks"][-1]["step"] == stopping["step"] and {"alpha_change", "reconstruction_change", "within",
                                                                   "phases_done"} <= set(stopping["checks"][0])
    assert all(check["layer_alpha_change"] == {clip["objects"][0]: check["alpha_change"]}
               for check in stopping["checks"])  # one layer: its change is the largest
    assert (stopping["expected_steps"], stopping["max_steps"], stopping["patience"]) == (30, 60, 2)
    assert stopping["average_decay"] == 0.0
    assert (tmp_path / "train" / "losses.png").stat().st_size > 0
    text = package_log.text
    assert "check at step 10: alpha changed" in text
    assert f"training stopped after step {stopping['step']}" in text and "settled: 2 checks in a row" in text
    bar = capsys.readouterr().err  # the progress bar shows every term under a label of its own
    assert all(f"{label}=" in bar for label in PROGRESS_LABELS.values()) and "settled=" in bar
