"""The benchmark's rendered suite (`python -m omnimatte benchmark --suite rendered`): every scene of
scenes.py rendered once into the cache (cache.py), then run and scored as the fast suite's presets are.

For each clip: the pipeline's flow and homography on the decoded input video, training with the layers
scored as it goes (the curve), the evaluate stage's metrics and baselines with evaluation.png, removal PSNR
with its baselines (removal.py), and the render ablation: the trained model rendered again with each
rendering step switched off in turn (plate matte, alpha fit, core fill, effect claim, shadow fit, guided
upsampling when trained below the working size, detail transfer), scored on every metric. Writes
table.md/csv, ablation.md/csv, curves.png, clips.png (the suite's contact sheet) and benchmark.json.
"""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from omnimatte.background_fit import BackgroundFitSettings
from omnimatte.benchmark import (RENDER_STEPS, Suite, ablated_steps, commit_id, device_name, markdown_table,
                                 mean_layer_scores, plot_curves, prepare_clip, score_alphas, train_scored, write_csv)
from omnimatte.devices import resolve_device
from omnimatte.diagnose.benchmark import diagnose_scored_clip
from omnimatte.errors import StageError
from omnimatte.evaluate import LAYER_SCORES, run_evaluate
from omnimatte.imaging import psnr
from omnimatte.io import atomic_path, save_json
from omnimatte.logs import get_logger
from omnimatte.render import (RenderSettings, SampledBackgrounds, render_frame, render_layers, render_pass,
                              tensor_to_uint8)
from omnimatte.rendered.cache import cache_root, ensure_clips
from omnimatte.rendered.clip import RenderedClip, load_rendered_clip
from omnimatte.rendered.removal import evaluate_removal, remove_layer
from omnimatte.rendered.renderer import RendererMissing
from omnimatte.rendered.scene import Scene
from omnimatte.rendered.scenes import SCENES
from omnimatte.rendered.sheet import clips_sheet
from omnimatte.train import VideoTensors

STAGE = "benchmark"
log = get_logger(STAGE)

# The clips' own length and size (0: each scene's); training as the pipeline trains a user's clip on this
# machine (train.cpu's settings on the CPU, the paper's on a GPU).
RENDERED = Suite("rendered", device="auto", frames=0, width=0, height=0, eval_every=250, train={})
# The rendered suite also switches detail transfer off: it changes the layers' colour, which removal PSNR sees.
ABLATED_STEPS = {**RENDER_STEPS, "detail_transfer": "detail_transfer"}
SCORES = (*LAYER_SCORES, "background_psnr", "removal_psnr", "reconstruction_psnr")
COLUMNS = (
    ("clip", "clip", "{}"),
    ("objects", "objects", "{}"),
    ("soft IoU", "soft_iou", "{:.3f}"),
    ("effect recall", "effect_recall", "{:.3f}"),
    ("alpha leak", "alpha_leak", "{:.3f}"),
    ("bg PSNR", "background_psnr", "{:.2f}"),
    ("removal PSNR", "removal_psnr", "{:.2f}"),
    ("recon PSNR", "reconstruction_psnr", "{:.2f}"),
    ("mask-only IoU", "mask_soft_iou", "{:.3f}"),
    ("mask-only recall", "mask_effect_recall", "{:.3f}"),
    ("mask-only leak", "mask_alpha_leak", "{:.3f}"),
    ("mask-only removal", "mask_removal_psnr", "{:.2f}"),
    ("median bg PSNR", "median_background_psnr", "{:.2f}"),
    ("median removal", "median_removal_psnr", "{:.2f}"),
    ("steps", "stop_step", "{}"),
    ("train s", "train_seconds", "{:.0f}"),
    ("steps/s", "steps_per_second", "{:.2f}"),
    ("diagnose", "diagnose", "{}"),
    ("flagged", "diagnose_flagged", "{}"),
    ("unexplained IoU", "unexplained_iou", "{:.3f}"),
)
ABLATION_COLUMNS = (("clip", "clip", "{}"), ("rendered", "rendered", "{}"),
                    *((title, key, fmt) for title, key, fmt in COLUMNS if key in SCORES))


def suite_scenes(suite: Suite, names: list[str] | None) -> list[Scene]:
    """The suite's scenes (all, or those named), filmed at the suite's frames and size where it gives them."""
    names = names or list(SCENES)
    unknown = [name for name in names if name not in SCENES]
    if unknown:
        raise StageError(STAGE, suite.name, f"unknown scene(s) {unknown}", f"choose from {', '.join(SCENES)}")
    changes = {key: value for key, value in (("n_frames", suite.frames), ("width", suite.width),
                                             ("height", suite.height)) if value}
    return [SCENES[name].filmed(**changes) if changes else SCENES[name] for name in names]


@torch.no_grad()
def score_rendered(model, video: VideoTensors, rendered: RenderedClip, settings: RenderSettings,
                   sampled: SampledBackgrounds | None = None) -> dict:
    """The model's layers rendered with `settings` (detail transfer included), scored against the rendered
    clip: the per-object means of soft IoU, effect recall and alpha leak, the background PSNR against the
    clean plate, the mean removal PSNR and the reconstruction PSNR against the input."""
    clip = rendered.clip
    was_training = model.training
    model.eval()
    shared = render_pass(model, video, settings, sampled)
    alphas, layers, backgrounds, composites = [], [], [], []
    for t in range(video.num_frames):
        frame = render_frame(shared, t)
        alphas.append(frame.alpha[:, 0].cpu().numpy())
        layers.append(np.stack([tensor_to_uint8(torch.cat((frame.rgb[i] * 0.5 + 0.5, frame.alpha[i])))
                                for i in range(len(clip.object_names))]))
        backgrounds.append(tensor_to_uint8(frame.background[0] * 0.5 + 0.5))
        composites.append(tensor_to_uint8(frame.composite[0] * 0.5 + 0.5))
    model.train(was_training)
    row = mean_layer_scores(score_alphas(np.stack(alphas), clip), clip.object_names)
    background = np.stack(backgrounds)
    stacked = np.stack(layers)
    by_name = {name: stacked[:, i] for i, name in enumerate(clip.object_names)}
    row["background_psnr"] = round(psnr(background, clip.background), 3)
    row["removal_psnr"] = round(float(np.mean([psnr(remove_layer(background, by_name, clip.object_names, name),
                                                     rendered.without[name]) for name in clip.object_names])), 3)
    row["reconstruction_psnr"] = round(psnr(np.stack(composites), clip.frames), 3)
    return row


def run_rendered_clip(rendered: RenderedClip, suite: Suite, config, work: Path, device: torch.device,
                      flow_weights: str, max_canvas_scale: float = 4.0) -> dict:
    """Run one rendered clip through the pipeline's stages and score it (the module's docstring), the canvas up
    to its scene's `max_canvas_scale` frame areas; returns its result row, curve and render ablations."""
    name = rendered.info["scene"]
    if work.exists():
        shutil.rmtree(work)
    began = time.perf_counter()
    clip = rendered.clip
    settings = RenderSettings.from_config(config)
    video, flow_info = prepare_clip(work, name, clip, config.trimap_band, device, flow_weights, config.scale,
                                    canvas_plate=config.background == "canvas", max_canvas_scale=max_canvas_scale,
                                    background_fit=BackgroundFitSettings() if settings.reads_background_fit else None)
    run, curve, train_seconds = train_scored(name, clip, video, suite, config, work, device)
    model = run.model
    sampled = SampledBackgrounds(model, video)
    ablations = {"as_trained": score_rendered(model, video, rendered, settings, sampled)}
    ablations.update({f"without_{ABLATED_STEPS[step]}": score_rendered(model, video, rendered, settings.without(step),
                                                                       sampled)
                      for step in ablated_steps(settings, config.scale, len(clip.object_names), ABLATED_STEPS)})
    render_layers(model, video, settings, work / "omnimatte", name, sampled)
    metrics = run_evaluate(name, work / "omnimatte", work / "frames", rendered.folder / "gt", clip.object_names,
                           work / "metrics.json", masks_dir=work / "masks", homography_dir=work / "homography",
                           sheet_path=work / "evaluation.png")
    metrics["removal"] = evaluate_removal(name, work / "omnimatte", work / "frames", rendered.folder,
                                          clip.object_names, work / "masks", work / "homography")
    metrics["clip"] = {"folder": str(rendered.folder), "key": rendered.info["key"],
                       "renderer": rendered.info["renderer"], "stresses": rendered.info["stresses"]}
    save_json(work / "metrics.json", metrics)
    write_csv(work / "curve.csv", curve)
    diagnosis = diagnose_scored_clip(name, work, clip.object_names,
                                     rendered.unexplained if rendered.info["unexplained"] else None)
    row = {"clip": name, "objects": len(clip.object_names), **metrics["summary"], **metrics["removal"]["summary"],
           "train_seconds": round(train_seconds, 1), "total_seconds": round(time.perf_counter() - began, 1),
           "stop_step": run.stop_step, "stop_reason": run.stop_reason,
           "steps_per_second": curve[-1]["steps_per_second"], "flow": flow_info["method"],
           "frames": clip.n_frames, "render_seconds": rendered.info["render_seconds"], **diagnosis["row"]}
    log.info("%s: %s", name, " ".join(f"{key}={value}" for key, value in row.items()))
    return {"row": row, "curve": curve, "checks": run.checks, "render_ablations": ablations,
            "diagnostics": diagnosis["checks"]}


def ablation_rows(results: dict[str, dict]) -> list[dict]:
    """One row per clip and rendering: as trained, then without each step."""
    return [{"clip": clip, "rendered": variant.replace("_", " "), **scores}
            for clip, result in results.items() for variant, scores in result["render_ablations"].items()]


def run_rendered_suite(suite: Suite, out_dir: Path, names: list[str] | None = None, flow_weights: str = "DEFAULT",
                       cache: Path | None = None, render_only: bool = False) -> dict:
    """Render the missing clips into the cache, draw the suite's contact sheet into out_dir/clips.png, and
    (unless render_only) run and score every clip into out_dir/{clip}/; write the tables, the plot and
    benchmark.json; print the table."""
    scenes = suite_scenes(suite, names)
    root = cache_root(cache)
    out_dir = Path(out_dir)
    try:
        folders = ensure_clips(scenes, root)
    except RendererMissing as err:
        raise StageError(STAGE, suite.name, str(err), "or point --render-cache at a folder holding the clips") from err
    clips_sheet(folders, out_dir / "clips.png")
    if render_only:
        print(f"rendered suite: {len(folders)} clips in {root}/; contact sheet {out_dir / 'clips.png'}", flush=True)
        return {"clips": {name: str(folder) for name, folder in folders.items()}}
    device = resolve_device(STAGE, suite.name, suite.device)
    try:
        config = suite.train_config(device)
    except ValueError as err:
        raise StageError(STAGE, suite.name, str(err), "give train settings as in config/config.yaml") from err
    settings = {"suite": suite.name, "scenes": [scene.name for scene in scenes], "eval_every": suite.eval_every,
                "flow_weights": flow_weights, "cache": str(root),
                "train": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("cpu", "checkpoint_every")}}
    header = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "device": device_name(device), "torch": torch.__version__, "commit": commit_id(), "settings": settings}
    log.info("benchmark %s on %s: clips %s, about %d steps expected (%d to %d)", suite.name, header["device"],
             ", ".join(folders), config.steps, config.min_steps, config.max_steps)
    results, failures = {}, {}
    scene_by_name = {scene.name: scene for scene in scenes}
    for name, folder in folders.items():
        log.info("benchmark: %s", name)
        rendered = load_rendered_clip(folder)
        try:
            results[name] = run_rendered_clip(rendered, suite, config, out_dir / name, device, flow_weights,
                                              scene_by_name[name].max_canvas_scale)
        except StageError as err:  # a stage refused the clip: that is the clip's result, and the others still run
            log.error("benchmark: %s failed: %s", name, err)
            failures[name] = str(err)
            results[name] = {"row": {"clip": name, "objects": len(rendered.clip.object_names), "error": str(err)},
                             "curve": [], "checks": [], "render_ablations": {}}
        # After every clip, so that a run stopped or killed part way keeps the clips it finished.
        title, table = write_suite_results(out_dir, suite, config, header, results, failures)
    print(f"{title}\n\n{table}\n\nwritten to {out_dir}/ (table.md, table.csv, ablation.md, ablation.csv, curves.png, "
          "clips.png, benchmark.json)", flush=True)
    return {**header, "results": results}


def write_suite_results(out_dir: Path, suite: Suite, config, header: dict, results: dict[str, dict],
                        failures: dict[str, str]) -> tuple[str, str]:
    """Write the clips run so far: table.md/csv, ablation.md/csv, curves.png and benchmark.json (each atomically);
    returns the tables' title and the markdown table."""
    rows = [result["row"] for result in results.values()]
    flows = ", ".join(sorted({row["flow"] for row in rows if "flow" in row})) or "none"
    title = (f"omnimatte benchmark, suite {suite.name}: {header['device']}; {header['date']}; commit "
             f"{header['commit'] or 'unknown'}; until the layers settle (about {config.steps} steps expected, "
             f"{config.min_steps} to {config.max_steps}), nf {config.nf}, batch {config.batch_size}, "
             f"scale {config.scale}; flow {flows}")
    table = markdown_table(rows, COLUMNS)
    if failures:
        table += "\n\n" + "\n".join(f"- {name} failed: {message}" for name, message in failures.items())
    ablation = ablation_rows(results)
    with atomic_path(out_dir / "table.md") as tmp:
        tmp.write_text(f"{title}\n\n{table}\n")
    with atomic_path(out_dir / "ablation.md") as tmp:
        tmp.write_text(f"{title}\n\nEach trained model rendered as trained and with each rendering step off in turn "
                       f"(detail transfer included; every score over the whole clip).\n\n"
                       f"{markdown_table(ablation, ABLATION_COLUMNS)}\n")
    write_csv(out_dir / "table.csv", rows)
    write_csv(out_dir / "ablation.csv", ablation)
    plot_curves(out_dir / "curves.png", results, title)
    save_json(out_dir / "benchmark.json", {**header, "results": results})
    return title, table
