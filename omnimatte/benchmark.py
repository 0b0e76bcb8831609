"""Training on synthetic clips and scoring against their ground truth: the benchmark.

prepare_synthetic and far_leak are shared with the shadow test, run_preset with
benchmarks/train_speed.py. run_suite trains every preset of a suite, scores the layers at intervals
during training (for curves against training time) and once at the end with the
evaluate stage's metrics and baselines, and writes a table, a plot and the raw numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from omnimatte.background_fit import BackgroundFitSettings
from omnimatte.devices import resolve_device
from omnimatte.diagnose.benchmark import diagnose_scored_clip
from omnimatte.errors import StageError
from omnimatte.evaluate import LAYER_SCORES, layer_scores, run_evaluate, visibility
from omnimatte.fingerprint import inputs_digest
from omnimatte.flow import run_flow
from omnimatte.homography import run_homography
from omnimatte.imaging import psnr
from omnimatte.io import atomic_path, save_json, write_frames
from omnimatte.logs import get_logger
from omnimatte.synthetic import PRESETS, Clip, render_clip, write_clip
from omnimatte.render import (RenderSettings, SampledBackgrounds, render_frame, render_layers, render_pass,
                              tensor_to_uint8)
from omnimatte.train import CPU_SETTINGS, TrainConfig, TrainingRun, VideoTensors, load_video, train_model
from omnimatte.train.model_file import save_model

STAGE = "benchmark"
log = get_logger(STAGE)

RESULTS = Path("results/benchmark")  # each suite's (and train_speed.py's) own folder under it, beside the samples'

RECALL_TARGET = 0.5  # time-to-quality: until the layers hold half of their effects
# The rendering steps the benchmark switches off in turn on each trained model (RenderSettings
# field -> the ablation's name in table.csv and benchmark.json: without_<name>_<score>).
RENDER_STEPS = {"background_match_threshold": "plate_matte", "fit_alpha": "fit_alpha", "fill_cores": "fill_cores",
                "refine_alpha": "refine_alpha", "claim_effects": "claim_effects", "fit_shadows": "fit_shadows",
                "cut_strays": "cut_strays", "cut_copies": "cut_copies", "merge_overlaps": "merge_overlaps",
                "sample_background": "sampled_background", "background_detail": "background_detail"}
CURVE_METRICS = ("soft_iou", "effect_recall", "alpha_leak", "background_psnr", "reconstruction_psnr")
# Table columns: (title, key in a result row, format).
COLUMNS = (
    ("preset", "preset", "{}"),
    ("objects", "objects", "{}"),
    ("soft IoU", "soft_iou", "{:.3f}"),
    ("effect recall", "effect_recall", "{:.3f}"),
    ("alpha leak", "alpha_leak", "{:.3f}"),
    ("bg PSNR", "background_psnr", "{:.2f}"),
    ("recon PSNR", "reconstruction_psnr", "{:.2f}"),
    ("mask-only IoU", "mask_soft_iou", "{:.3f}"),
    ("mask-only recall", "mask_effect_recall", "{:.3f}"),
    ("mask-only leak", "mask_alpha_leak", "{:.3f}"),
    ("median bg PSNR", "median_background_psnr", "{:.2f}"),
    ("steps", "stop_step", "{}"),
    ("train s", "train_seconds", "{:.0f}"),
    ("steps/s", "steps_per_second", "{:.2f}"),
    (f"s to recall {RECALL_TARGET}", "recall_seconds", "{:.0f}"),
    ("diagnose", "diagnose", "{}"),
    ("flagged", "diagnose_flagged", "{}"),
)


def prepare_synthetic(work: Path, preset: str, n_frames: int, width: int, height: int, trimap_band: int,
                      device: torch.device, flow_weights: str = "DEFAULT", scale: float = 1.0,
                      *, canvas_plate: bool, background_fit: BackgroundFitSettings | None = None
                      ) -> tuple[Clip, VideoTensors, dict]:
    """Render a clip, run the flow and homography stages on it, and load it for training (with `background_fit`,
    also where its background breaks the camera model, as load_video says).

    Returns the clip (with its ground truth), the training tensors and the flow stage's info.
    """
    clip = render_clip(preset, n_frames, width, height)
    video, flow_info = prepare_clip(work, preset, clip, trimap_band, device, flow_weights, scale,
                                    canvas_plate=canvas_plate, background_fit=background_fit)
    return clip, video, flow_info


def prepare_clip(work: Path, name: str, clip: Clip, trimap_band: int, device: torch.device,
                 flow_weights: str = "DEFAULT", scale: float = 1.0, *, canvas_plate: bool,
                 max_canvas_scale: float = 4.0, background_fit: BackgroundFitSettings | None = None
                 ) -> tuple[VideoTensors, dict]:
    """Write a clip's frames and masks into work/, run the flow and homography stages on them (the canvas up to
    `max_canvas_scale` frame areas), and load them for training (load_video: `background_fit` as the train
    stage gives it); returns the training tensors and the flow stage's info."""
    write_frames(work / "frames", clip.frames)
    for object_name in clip.object_names:
        write_frames(work / "masks" / object_name, clip.masks[object_name])
    flow_info = run_flow(name, work / "frames", work / "flow", work / "flow.mp4", weights=flow_weights,
                         device=str(device))
    run_homography(name, work / "frames", work / "masks", work / "homography", work / "stabilised.mp4",
                   max_canvas_scale=max_canvas_scale)
    video = load_video(name, work / "frames", work / "flow", work / "homography", work / "masks",
                       clip.object_names, trimap_band, device, scale, canvas_plate=canvas_plate,
                       background_fit=background_fit,
                       effect_reach=(background_fit or BackgroundFitSettings()).effect_reach)
    return video, flow_info


def far_leak(alpha: np.ndarray, truth: np.ndarray, distance: int = 6) -> float:
    """Alpha further than `distance` px from any true layer pixel, relative to the true layer's alpha.

    Unlike alpha_leak, this ignores the halo that the coarse mask's own dilation
    leaves around the object, and counts only alpha that landed elsewhere.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * distance + 1, 2 * distance + 1))
    near = np.stack([cv2.dilate((t > 0.02).astype(np.uint8), kernel) for t in truth]).astype(bool)
    total = truth.sum()
    return float(alpha[~near].sum() / total) if total > 0 else float("nan")


def score_alphas(alphas: np.ndarray, clip: Clip) -> dict[str, float]:
    """Per object: effect recall, alpha leak, far leak and soft IoU of rendered alphas (T, L, H, W) in [0, 1].

    Like the evaluate stage, each pixel counts by how much of the object shows there
    (objects in front hide it); far leak counts every pixel.
    """
    truths = [clip.layers[name][..., 3].astype(np.float64) / 255 for name in clip.object_names]
    scores: dict[str, float] = {}
    for i, (name, truth, shown) in enumerate(zip(clip.object_names, truths, visibility(truths))):
        alpha = alphas[:, i].astype(np.float64)
        effect = clip.effects[name].astype(np.float64) / 255
        layer = layer_scores(alpha, truth, effect, shown)
        scores[f"{name}_effect_recall"] = _round(layer["effect_recall"])
        scores[f"{name}_alpha_leak"] = _round(layer["alpha_leak"])
        scores[f"{name}_far_leak"] = round(far_leak(alpha, truth), 4)
        scores[f"{name}_soft_iou"] = _round(layer["soft_iou"])
    return scores


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def mean_layer_scores(per_object: dict, object_names: list[str]) -> dict[str, float | None]:
    """Each layer score (LAYER_SCORES) averaged over the objects that have it (None where none has)."""
    row: dict[str, float | None] = {}
    for key in LAYER_SCORES:
        known = [v for v in (per_object[f"{name}_{key}"] for name in object_names) if v is not None]
        row[key] = round(float(np.mean(known)), 4) if known else None
    return row


def ablated_steps(settings: RenderSettings, scale: float, objects: int, steps=RENDER_STEPS) -> list[str]:
    """The rendering steps of `steps` that are on in `settings` and do something at training scale `scale` with
    `objects` layers (refine_alpha does nothing at full size, cut_copies and merge_overlaps nothing with one layer):
    each is switched off in turn for the render ablation."""
    return [step for step in steps if getattr(settings, step) and (step != "refine_alpha" or scale < 1)
            and (step not in ("cut_copies", "merge_overlaps") or objects > 1)]


@torch.no_grad()
def score_model(model, video: VideoTensors, clip: Clip, settings: RenderSettings,
                sampled: SampledBackgrounds | None = None, per_object: bool = False) -> dict[str, float | None]:
    """The model's layers now, without detail transfer, scored against the clip: the
    per-object means of soft IoU, effect recall and alpha leak (with `per_object`, each object's
    too, as `<object>_<score>`), and the background and reconstruction PSNR (the sampled
    backgrounds from `sampled` when given: render_pass)."""
    was_training = model.training
    model.eval()
    shared = render_pass(model, video, settings.without("detail_transfer"), sampled)
    alphas, backgrounds, composites = [], [], []
    for t in range(video.num_frames):
        frame = render_frame(shared, t)
        alphas.append(frame.alpha[:, 0].cpu().numpy())
        backgrounds.append(tensor_to_uint8(frame.background[0] * 0.5 + 0.5))
        composites.append(tensor_to_uint8(frame.model_composite[0] * 0.5 + 0.5))
    model.train(was_training)
    scores = score_alphas(np.stack(alphas), clip)
    row = mean_layer_scores(scores, clip.object_names)
    row["background_psnr"] = round(psnr(np.stack(backgrounds), clip.background), 3)
    row["reconstruction_psnr"] = round(psnr(np.stack(composites), clip.frames), 3)
    if per_object and len(clip.object_names) > 1:
        row.update({f"{name}_{key}": scores[f"{name}_{key}"] for name in clip.object_names for key in LAYER_SCORES})
    return row


@dataclass(frozen=True)
class Suite:
    """What the benchmark runs: clip size, training settings (over TrainConfig's defaults), device, scoring interval.

    `overrides` are train settings a person gave for this run; they apply last, after the
    device's own settings (train.cpu on the CPU), so that what was asked for is what runs.
    """

    name: str
    device: str
    frames: int
    width: int
    height: int
    eval_every: int
    train: dict
    overrides: dict = dataclasses.field(default_factory=dict)

    def with_overrides(self, frames: int | None = None, width: int | None = None, height: int | None = None,
                       steps: int | None = None, eval_every: int | None = None, device: str | None = None,
                       train: dict | None = None) -> "Suite":
        """The suite with the given settings replaced (None keeps the suite's)."""
        changes = {key: value for key, value in {"frames": frames, "width": width, "height": height,
                                                  "eval_every": eval_every, "device": device}.items()
                   if value is not None}
        overrides = {**self.overrides, **(train or {})}
        if steps is not None:  # exactly this many steps: the stopping rule can neither end them early nor extend them
            overrides.update(steps=steps, min_steps=steps, max_steps=steps)
        return dataclasses.replace(self, overrides=overrides, **changes)

    def train_config(self, device: torch.device) -> TrainConfig:
        """The training settings on `device`; checkpoints are never written (every run starts fresh)."""
        on_device = TrainConfig.from_dict({**self.train, "device": str(device)}).for_device(device)
        config = TrainConfig.from_dict({**dataclasses.asdict(on_device), **self.overrides, "cpu": {}})
        return dataclasses.replace(config, checkpoint_every=config.max_steps + 1)


SUITES = {
    # Every preset, small and on the CPU: train.cpu's settings (its schedule and stopping rule too) at full size.
    "fast": Suite("fast", device="cpu", frames=24, width=224, height=128, eval_every=300,
                  train={**CPU_SETTINGS, "scale": 1.0, "cpu": {}}),
    # The paper's network and batch on the demo's size (TrainConfig's defaults).
    "full": Suite("full", device="cuda", frames=48, width=448, height=256, eval_every=250, train={"cpu": {}}),
    # The demo as the pipeline trains it by default on this machine: the paper's settings
    # on a GPU, train.cpu's on the CPU (benchmarks/train_speed.py runs this one).
    "demo": Suite("demo", device="auto", frames=48, width=448, height=256, eval_every=250, train={}),
}


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def commit_id() -> str | None:
    """The checkout's commit, so a table can be traced to the code that made it."""
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def time_to_quality(curve: list[dict], recall_target: float, iou_target: float | None = None) -> dict | None:
    """The first scored point from which the mean effect recall (and, with iou_target, the soft IoU) stays at or
    above its target to the end.

    "Stays" matters: at the very start every alpha is about 0.5, which covers a faint
    effect by accident before the mask term has taught the layer anything.
    """
    reached = None
    for point in reversed(curve):
        if (point["effect_recall"] or 0.0) < recall_target:
            break
        if iou_target is not None and (point["soft_iou"] or 0.0) < iou_target:
            break
        reached = point
    return reached


def train_scored(name: str, clip: Clip, video: VideoTensors, suite: Suite, config: TrainConfig, work: Path,
                 device: torch.device) -> tuple[TrainingRun, list[dict], float]:
    """Train on a prepared clip, scoring the layers (score_model; with several objects, each object's scores too, so
    a curve shows which layer takes or loses an effect when) every suite.eval_every steps and at the step where the
    stopping rule ended the run, and keep the model as the train stage does (`work`/model.pt, which
    `omnimatte render` renders again with other switches); returns the run (model, checks, where and why it
    stopped), the curve and the training seconds (the scoring left out)."""
    curve: list[dict] = []
    clock = {"train": 0.0, "since": time.perf_counter()}
    # The curve follows the layers over the learnt background: sampling each frame's background from the frames
    # again at every point would cost more than the training between points on the CPU.
    settings = RenderSettings.from_config(config).without("sample_background")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def score_point(step: int, model) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        clock["train"] += time.perf_counter() - clock["since"]
        point = {"step": step, "seconds": round(clock["train"], 2),
                 "steps_per_second": round(step / max(clock["train"], 1e-9), 3)}
        if device.type == "cuda":
            point["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
        point.update(score_model(model, video, clip, settings, per_object=True))
        curve.append(point)
        log.info("%s: %s", name, " ".join(f"{key}={value}" for key, value in point.items()))
        clock["since"] = time.perf_counter()

    def on_step(step: int, model) -> None:
        if step % suite.eval_every == 0:
            score_point(step, model)

    run = train_model(name, video, config, work / "checkpoint.pt", device, on_step=on_step)
    if not curve or curve[-1]["step"] != run.stop_step:  # the last step, wherever the stopping rule put it
        score_point(run.stop_step, run.model)
    save_model(work / "model.pt", run.model, config, video.canvas_size, clip.object_names,
               inputs_digest(work / "frames", work / "flow", work / "homography", work / "masks", clip.object_names))
    return run, curve, clock["train"]


def run_preset(preset: str, suite: Suite, config: TrainConfig, work: Path, device: torch.device, flow_weights: str,
               recall_target: float = RECALL_TARGET, iou_target: float | None = None) -> dict:
    """Train one preset, scoring it every suite.eval_every steps; then render, evaluate and return its result row,
    its curve, the stopping rule's checks and the trained model's scores with each rendering step switched off in
    turn (render_ablations).

    Training seconds leave the scoring out. The row also says how fast training ran
    (steps a second, peak GPU memory), where and why it stopped, and how soon it got good: the step and seconds
    from which the mean effect recall stays at or above `recall_target` (and the soft
    IoU at or above `iou_target`, when given) to the end (time_to_quality).
    """
    if work.exists():
        shutil.rmtree(work)
    began = time.perf_counter()
    settings = RenderSettings.from_config(config)
    clip, video, flow_info = prepare_synthetic(work, preset, suite.frames, suite.width, suite.height,
                                               config.trimap_band, device, flow_weights, config.scale,
                                               canvas_plate=config.background == "canvas",
                                               background_fit=BackgroundFitSettings() if settings.reads_background_fit
                                               else None)
    write_clip(clip, work / "clip")
    run, curve, train_seconds = train_scored(preset, clip, video, suite, config, work, device)
    model = run.model
    # What the rendering steps buy, from the same trained model: each switched off in turn.
    sampled = SampledBackgrounds(model, video)
    render_ablations = {f"without_{RENDER_STEPS[step]}":
                        score_model(model, video, clip, settings.without(step), sampled)
                        for step in ablated_steps(settings, config.scale, len(clip.object_names))}
    render_layers(model, video, settings, work / "omnimatte", preset, sampled)
    metrics = run_evaluate(preset, work / "omnimatte", work / "frames", work / "clip" / "gt", clip.object_names,
                           work / "metrics.json", masks_dir=work / "masks", homography_dir=work / "homography",
                           sheet_path=work / "evaluation.png")
    write_csv(work / "curve.csv", curve)
    diagnosis = diagnose_scored_clip(preset, work, clip.object_names)
    reached = time_to_quality(curve, recall_target, iou_target)
    row = {"preset": preset, "objects": len(clip.object_names), **metrics["summary"],
           "train_seconds": round(train_seconds, 1), "total_seconds": round(time.perf_counter() - began, 1),
           "stop_step": run.stop_step, "stop_reason": run.stop_reason,
           "steps_per_second": curve[-1]["steps_per_second"], "peak_gpu_mib": curve[-1].get("peak_gpu_mib"),
           "recall_target": recall_target, "iou_target": iou_target, "recall_step": reached["step"] if reached else None,
           "recall_seconds": reached["seconds"] if reached else None, "flow": flow_info["method"], **diagnosis["row"],
           **{f"{name}_{key}": value for name, scores in render_ablations.items() for key, value in scores.items()}}
    return {"row": row, "curve": curve, "checks": run.checks, "render_ablations": render_ablations,
            "diagnostics": diagnosis["checks"]}


def markdown_table(rows: list[dict], columns: tuple[tuple[str, str, str], ...] = COLUMNS) -> str:
    """Rows as a markdown table of `columns` ((title, key, format) each; the first one left-aligned)."""
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    for row in rows:
        cells = ["n/a" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def plot_curves(path: Path, results: dict[str, dict], title: str) -> None:
    """Each metric against training seconds, one line per preset; dashed: the preset's baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baselines = {"soft_iou": "mask_soft_iou", "effect_recall": "mask_effect_recall", "alpha_leak": "mask_alpha_leak",
                 "background_psnr": "median_background_psnr"}
    names = {"soft_iou": "soft IoU", "effect_recall": "effect recall", "alpha_leak": "alpha leak",
             "background_psnr": "background PSNR (dB)", "reconstruction_psnr": "reconstruction PSNR (dB)"}
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), dpi=100)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes.flat, CURVE_METRICS):
        for i, (preset, result) in enumerate(results.items()):
            colour = colours[i % len(colours)]
            points = [(c["seconds"], c[metric]) for c in result["curve"] if c[metric] is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, color=colour, label=preset)
            baseline = result["row"].get(baselines.get(metric, ""))
            if baseline is not None:
                ax.axhline(baseline, color=colour, linestyle="--", linewidth=0.8)
        ax.set_title(names[metric])
        ax.set_xlabel("training seconds")
        ax.grid(True, alpha=0.3)
    legend = axes.flat[-1]
    legend.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend.legend(handles, labels, loc="upper left", title="preset")
    legend.text(0.0, 0.0, "curves: the network's own layers\n(before detail transfer)\n"
                "dashed: the preset's baseline\n(mask-only layer, median background)", transform=legend.transAxes,
                fontsize=9, va="bottom")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def run_suite(suite: Suite, out_dir: Path, presets: list[str] | None = None, flow_weights: str = "DEFAULT") -> dict:
    """Run the suite's presets into out_dir/{preset}/ and write out_dir/table.md, table.csv,
    curves.png and benchmark.json (device, date, settings, results); print the table."""
    presets = presets or list(PRESETS)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise StageError(STAGE, suite.name, f"unknown preset(s) {unknown}", f"choose from {', '.join(PRESETS)}")
    device = resolve_device(STAGE, suite.name, suite.device)
    try:
        config = suite.train_config(device)
    except ValueError as err:
        raise StageError(STAGE, suite.name, str(err), "give train settings as in config/config.yaml") from err
    out_dir = Path(out_dir)
    settings = {"suite": suite.name, "frames": suite.frames, "width": suite.width, "height": suite.height,
                "eval_every": suite.eval_every, "flow_weights": flow_weights,
                "train": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("cpu", "checkpoint_every")}}
    header = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "device": device_name(device), "torch": torch.__version__, "commit": commit_id(), "settings": settings}
    log.info("benchmark %s on %s: presets %s, %d frames %dx%d, about %d steps expected (%d to %d)", suite.name,
             header["device"], ", ".join(presets), suite.frames, suite.width, suite.height, config.steps,
             config.min_steps, config.max_steps)
    results = {}
    for preset in presets:
        log.info("benchmark: %s", preset)
        results[preset] = run_preset(preset, suite, config, out_dir / preset, device, flow_weights)
    rows = [result["row"] for result in results.values()]
    flows = sorted({row["flow"] for row in rows})
    title = (f"omnimatte benchmark, suite {suite.name}: {header['device']}; {header['date']}; commit "
             f"{header['commit'] or 'unknown'}; {suite.frames} frames {suite.width}x{suite.height}, until the layers "
             f"settle (about {config.steps} steps expected, {config.min_steps} to {config.max_steps}), nf {config.nf}, "
             f"batch {config.batch_size}, scale {config.scale}; flow {', '.join(flows)}")
    table = markdown_table(rows)
    with atomic_path(out_dir / "table.md") as tmp:
        tmp.write_text(f"{title}\n\n{table}\n")
    write_csv(out_dir / "table.csv", rows)
    plot_curves(out_dir / "curves.png", results, title)
    save_json(out_dir / "benchmark.json", {**header, "results": results})
    print(f"{title}\n\n{table}\n\nwritten to {out_dir}/ (table.md, table.csv, curves.png, benchmark.json)", flush=True)
    return {**header, "results": results}
