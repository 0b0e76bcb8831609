"""The benchmark: suite settings, the suite's pipeline config, and the command end to end on a tiny setting."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from omnimatte import benchmark
from omnimatte.benchmark import RENDER_STEPS, SUITES, markdown_table, run_preset, time_to_quality
from omnimatte.evaluate import visibility
from omnimatte.io import read_frames, read_png
from omnimatte.synthetic import PRESETS, render_clip
from omnimatte.render import RenderSettings
from omnimatte.train import CPU_SETTINGS, TrainConfig
from tests.helpers import REPO, run_snakemake


def test_suite_overrides_replace_only_what_is_given():
    fast = SUITES["fast"]
    cpu = torch.device("cpu")
    tiny = fast.with_overrides(frames=8, steps=5, train={"nf": 8})
    config = tiny.train_config(cpu)
    assert (tiny.frames, tiny.width, tiny.height, tiny.device) == (8, fast.width, fast.height, "cpu")
    # --steps trains exactly that many steps, the stopping rule neither ending them early nor extending them
    assert (config.steps, config.min_steps, config.max_steps) == (5, 5, 5)
    assert (config.nf, config.batch_size) == (8, fast.train["batch_size"])
    assert config.checkpoint_every > config.max_steps  # a benchmark run never resumes or writes checkpoints
    assert fast.train_config(cpu).steps == CPU_SETTINGS["steps"]  # the suite itself is unchanged: train.cpu's
    # The full suite keeps the paper's settings even on the CPU; the demo suite trains as the pipeline does.
    assert SUITES["full"].device == "cuda" and SUITES["full"].train_config(cpu).nf == 64
    assert SUITES["demo"].train_config(cpu) == dataclasses.replace(TrainConfig().for_device(cpu),
                                                                  device="cpu",
                                                                  checkpoint_every=CPU_SETTINGS["max_steps"] + 1)


def test_settings_given_for_a_run_win_over_the_devices_own():
    """train.cpu replaces the paper's settings on the CPU, but what a person asks for on the command line runs."""
    cpu = torch.device("cpu")
    demo = SUITES["demo"].with_overrides(steps=30, train={"nf": 8, "compile": True})
    config = demo.train_config(cpu)
    assert (config.steps, config.nf, config.compile) == (30, 8, True)
    assert (config.batch_size, config.scale) == (4, 0.5)  # the rest of train.cpu still applies
    assert SUITES["demo"].train_config(cpu).steps == CPU_SETTINGS["steps"]


def test_time_to_quality_is_where_the_recall_stays_above_the_target():
    curve = [{"step": s, "effect_recall": r} for s, r in [(10, 0.9), (20, 0.1), (30, 0.6), (40, 0.4), (50, 0.7),
                                                          (60, 0.8)]]
    assert time_to_quality(curve, 0.5)["step"] == 50  # not 10 (the untrained layer) nor 30 (it fell back)
    assert time_to_quality(curve, 0.95) is None
    assert time_to_quality([{"step": 5, "effect_recall": None}], 0.5) is None


def test_markdown_table_marks_missing_scores():
    row = {"preset": "dog", "objects": 1, "soft_iou": 0.51234, "effect_recall": None, "alpha_leak": 0.2,
           "background_psnr": 23.456, "reconstruction_psnr": 30.0, "mask_soft_iou": 0.5, "mask_effect_recall": 0.02,
           "mask_alpha_leak": 0.6, "median_background_psnr": 27.0, "train_seconds": 12.3, "steps_per_second": 4.5,
           "recall_seconds": None}
    lines = markdown_table([row]).splitlines()
    assert lines[0].startswith("| preset | objects | soft IoU | effect recall |")
    assert lines[0].endswith("| steps | train s | steps/s | s to recall 0.5 | diagnose | flagged |")
    assert lines[2] == ("| dog | 1 | 0.512 | n/a | 0.200 | 23.46 | 30.00 | 0.500 | 0.020 | 0.600 | 27.00 | n/a | 12 | 4.50 "
                        "| n/a | n/a | n/a |")


def test_benchmark_config_has_one_sample_per_preset(workdir: Path):
    config = yaml.safe_load((REPO / "config" / "benchmark.yaml").read_text())
    assert set(config["samples"]) == set(config["demo"]) == set(PRESETS)
    for name, sample in config["samples"].items():
        clip = render_clip(config["demo"][name]["preset"], 8, 64, 64)
        assert sample["demo"] == name
        assert list(sample["objects"]) == clip.object_names, name  # back to front, as the clip layers them
    result = run_snakemake(workdir, "-n", "--configfile", "config/benchmark.yaml")
    assert result.returncode == 0, result.stderr
    for name in PRESETS:
        assert f"results/{name}/metrics.json" in result.stdout


def test_config_schema_knows_every_preset():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["demo"]["additionalProperties"]["properties"]["preset"]["enum"] == list(PRESETS)


def score_bounds(work: Path, objects: int) -> dict[str, tuple[float, float]]:
    """The soft IoU and effect recall (means over the objects, each pixel weighed by how much of its object shows)
    that alphas within half an 8-bit step of a preset's written layers can have, from its ground truth."""
    names = [path.name for path in sorted((work / "clip" / "gt" / "layers").iterdir())]
    order = json.loads((work / "clip" / "gt" / "info.json").read_text())["objects"]
    assert sorted(order) == names and len(order) == objects
    truths = [read_frames(work / "clip" / "gt" / "layers" / name / "rgba", mode="rgba")[..., 3] / 255.0
              for name in order]
    ranges: dict[str, list[tuple[float, float]]] = {"soft_iou": [], "effect_recall": []}
    for name, truth, shown in zip(order, truths, visibility(truths)):
        alpha = read_frames(work / "omnimatte" / "layers" / name / "rgba", mode="rgba")[..., 3] / 255.0
        effect = read_frames(work / "clip" / "gt" / "effects" / name, mode="gray") / 255.0
        low, high = np.clip(alpha - 0.5 / 255, 0, 1), np.clip(alpha + 0.5 / 255, 0, 1)
        ranges["soft_iou"].append(((shown * np.minimum(low, truth)).sum() / (shown * np.maximum(high, truth)).sum(),
                                   (shown * np.minimum(high, truth)).sum() / (shown * np.maximum(low, truth)).sum()))
        ranges["effect_recall"].append(((shown * np.minimum(low, effect)).sum() / (shown * effect).sum(),
                                        (shown * np.minimum(high, effect)).sum() / (shown * effect).sum()))
    return {key: (float(np.mean([r[0] for r in values])), float(np.mean([r[1] for r in values])))
            for key, values in ranges.items()}


def test_benchmark_command_on_a_tiny_setting(tmp_path: Path):
    out = tmp_path / "bench"
    command = [sys.executable, "-m", "omnimatte", "benchmark", "--suite", "fast", "--presets", "bounce,crossing",
               "--frames", "8", "--width", "192", "--height", "112", "--steps", "2", "--eval-every", "1",
               "--settings", json.dumps({"nf": 8, "batch_size": 2}), "--flow-weights", "none", "--threads", "2",
               "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| bounce | 1 |" in result.stdout and "| crossing | 2 |" in result.stdout

    summary = json.loads((out / "benchmark.json").read_text())
    assert summary["date"] and "cores" in summary["device"]
    assert summary["settings"]["frames"] == 8 and summary["settings"]["train"]["steps"] == 2
    for preset in ("bounce", "crossing"):
        result_ = summary["results"][preset]
        assert [point["step"] for point in result_["curve"]] == [1, 2]
        # The last point scores the trained network's layers in memory; the evaluate stage scored the same layers
        # from the written PNGs: the two agree to within what the alpha's 8-bit rounding allows.
        bounds = score_bounds(out / preset, summary["results"][preset]["row"]["objects"])
        for key, (low, high) in bounds.items():
            assert low - 1e-4 <= result_["curve"][-1][key] <= high + 1e-4, (preset, key, low, high)
        assert result_["row"]["flow"] == "dis"
        assert result_["row"]["steps_per_second"] > 0 and result_["row"]["recall_target"] == 0.5
        assert all(point["steps_per_second"] > 0 for point in result_["curve"])
        # With several objects each point also scores each object, whose mean is the point's score.
        objects = json.loads((out / preset / "clip" / "gt" / "info.json").read_text())["objects"]
        with open(out / preset / "curve.csv") as f:
            header = f.readline().strip().split(",")
        for point in result_["curve"]:
            per_object = [point.get(f"{name}_soft_iou") for name in objects]
            if len(objects) == 1:
                assert per_object == [None] and not any(key.startswith(objects[0]) for key in point)
            else:
                assert point["soft_iou"] == pytest.approx(np.mean(per_object), abs=1e-4)
                assert {f"{name}_{key}" for name in objects for key in ("soft_iou", "effect_recall", "alpha_leak")
                        } <= set(header)
        metrics = json.loads((out / preset / "metrics.json").read_text())
        assert metrics["summary"]["soft_iou"] == result_["row"]["soft_iou"]
        assert read_png(out / preset / "evaluation.png").shape[1] == 4 * 192
        diagnostics = json.loads((out / preset / "diagnostics.json").read_text())
        assert result_["row"]["diagnose"] == diagnostics["verdict"]
        assert {check: c["verdict"] for check, c in result_["diagnostics"].items()} == \
            {check: c["verdict"] for check, c in diagnostics["checks"].items()}

    # Each clip keeps its trained model: the render stage renders it again from the clip's folders without
    # training, and with the suite's settings gives the very layers the suite wrote.
    work = out / "crossing"
    names = json.loads((work / "clip" / "gt" / "info.json").read_text())["objects"]  # back to front
    rendered = subprocess.run([sys.executable, "-m", "omnimatte", "render", "--sample", "crossing",
                               "--frames", str(work / "frames"), "--flow", str(work / "flow"),
                               "--homography", str(work / "homography"), "--masks", str(work / "masks"),
                               "--objects", ",".join(names),
                               "--model", str(work / "model.pt"), "--out", str(tmp_path / "again"),
                               "--settings", json.dumps(summary["settings"]["train"]), "--threads", "2"],
                              capture_output=True, text=True, timeout=600, cwd=REPO)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    for name in names:
        assert np.array_equal(read_frames(tmp_path / "again" / "layers" / name / "rgba", mode="rgba"),
                              read_frames(work / "omnimatte" / "layers" / name / "rgba", mode="rgba")), name

    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["preset"] for row in rows] == ["bounce", "crossing"]
    assert {"soft_iou", "effect_recall", "alpha_leak", "background_psnr", "reconstruction_psnr", "mask_soft_iou",
            "median_background_psnr", "train_seconds", "diagnose", "diagnose_flagged"} <= set(rows[0])
    table = (out / "table.md").read_text()
    assert summary["device"] in table and summary["date"] in table
    assert read_png(out / "curves.png").shape[0] > 200


def test_the_benchmark_command_offers_every_suite():
    from omnimatte.cli import build_parser

    parser = build_parser()
    for suite in SUITES:
        assert parser.parse_args(["benchmark", "--suite", suite]).suite == suite


def test_train_speed_records_every_setting_and_what_each_rendering_step_buys(tmp_path: Path):
    """benchmarks/train_speed.py on a tiny demo: the summary holds all the train settings and, trained below the
    working resolution with the plate matte and the alpha fit, the same model's scores without each rendering step.
    Training stops before the first scoring: the one scoring, at the stop, counts every training second."""
    result = subprocess.run([sys.executable, "benchmarks/train_speed.py", "--device", "cpu", "--flow-weights", "none",
                             "--frames", "8", "--width", "192", "--height", "112", "--eval-every", "5", "--steps", "2",
                             "--out", str(tmp_path)], cwd=REPO, check=True, capture_output=True, text=True)
    summary = json.loads((tmp_path / "dog" / "summary.json").read_text())
    assert summary["train"]["steps"] == 2 and summary["train"]["scale"] == CPU_SETTINGS["scale"]
    assert summary["stopped"]["step"] == 2 and summary["stopped"]["reason"].startswith("the ceiling")
    assert 0 < summary["steps_per_second"] < 1000  # two steps of a real network, not two in no time
    assert "; stopped at step 2, " in result.stdout
    assert set(summary["train"]) == {field.name for field in dataclasses.fields(TrainConfig)} - {"cpu"}
    ablations = summary["render_ablations"]
    assert set(ablations) == {"as_trained", "without_plate_matte", "without_fit_alpha", "without_fill_cores",
                              "without_refine_alpha", "without_claim_effects", "without_fit_shadows",
                              "without_cut_strays", "without_background_detail"}
    scores = {"soft_iou", "effect_recall", "alpha_leak", "background_psnr", "reconstruction_psnr"}
    assert all(set(values) >= scores for values in ablations.values())
    # what each one holds: test_each_rendering_step_is_scored_switched_off_alone_on_the_trained_model


def test_each_rendering_step_is_scored_switched_off_alone_on_the_trained_model(tmp_path: Path, monkeypatch):
    """run_preset scores the trained model once with each rendering step off and the others as trained (below the
    working resolution, so that guided upsampling counts too; the overlap merge has nothing to do with one layer;
    the sampled background, off by default, switched on so that it counts too), and reports exactly those scores
    under each step's name. The ablations share one model's sampled backgrounds; the curve renders without them."""
    calls = []
    real_score_model = benchmark.score_model

    def recorded(model, video, clip, settings, sampled=None, per_object=False):
        scores = real_score_model(model, video, clip, settings, sampled, per_object)
        calls.append((model, settings, sampled, scores))
        return scores

    monkeypatch.setattr(benchmark, "score_model", recorded)
    cpu = torch.device("cpu")
    suite = SUITES["demo"].with_overrides(frames=8, width=192, height=112, steps=2, eval_every=2, device="cpu",
                                          train={"nf": 8, "batch_size": 2, "sample_background": True})
    config = suite.train_config(cpu)
    assert config.scale < 1
    result = run_preset("dog", suite, config, tmp_path / "dog", cpu, "none")
    trained = RenderSettings.from_config(config)
    assert all(getattr(trained, step) for step in RENDER_STEPS)  # each is on as trained, so each ablation changes one
    (curve_model, curve_settings, curve_sampled, curve_scores), *ablations = calls
    assert curve_settings == trained.without("sample_background") and curve_sampled is None
    assert result["curve"][-1]["soft_iou"] == curve_scores["soft_iou"]
    ablated = [step for step in RENDER_STEPS if step not in ("cut_copies", "merge_overlaps")]  # one layer: no other
    assert [settings for _, settings, _, _ in ablations] == [trained.without(step) for step in ablated]
    assert all(model is curve_model for model, _, _, _ in ablations)  # the trained model, not another
    shared = {id(sampled) for _, _, sampled, _ in ablations}
    assert len(shared) == 1 and ablations[0][2] is not None  # one model's sampled backgrounds, made once
    for (_, _, _, scores), name in zip(ablations, (RENDER_STEPS[step] for step in ablated)):
        assert result["render_ablations"][f"without_{name}"] == scores
        assert all(result["row"][f"without_{name}_{key}"] == value for key, value in scores.items())


def test_step_speed_times_each_variant_side_by_side_and_refuses_a_malformed_one():
    command = [sys.executable, "benchmarks/step_speed.py", "--frames", "8", "--width", "192", "--height", "112",
               "--steps", "2", "--warmup", "1", "--threads", "1"]
    done = subprocess.run(command + ["--variant", '{"nf": 8}'], cwd=REPO, check=True, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    assert "median of 2 steps after 1" in lines[0]
    assert [line.split("steps/s")[1].strip() for line in lines[1:]] == ["defaults", '{"nf": 8}']
    assert all(float(line.split()[0]) > 0 for line in lines[1:])
    refused = subprocess.run(command + ["--variant", "[1, 2]"], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode != 0 and "give a JSON object of train settings" in refused.stderr
    mixed = subprocess.run(command + ["--variant", '{"scale": 0.5}'], cwd=REPO, capture_output=True, text=True)
    assert mixed.returncode != 0 and "the same train.scale" in mixed.stderr
