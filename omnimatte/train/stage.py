"""Stage 5: fit the Omnimatte model to one video (the render stage turns it into layers).

The whole video lives on the training device as tensors; each step draws a batch of
frame pairs (t, t+1), jitters them with one random zoom-and-crop per pair, renders
all layers in one forward pass and applies the paper's losses. Checkpoints are
written atomically every few hundred steps and a rerun resumes from the newest.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from omnimatte.background_fit import BackgroundFitSettings
from omnimatte.contract import TrainFiles
from omnimatte.devices import resolve_device
from omnimatte.fingerprint import inputs_digest
from omnimatte.io import save_json
from omnimatte.logs import get_logger
from omnimatte.train.checkpoint import catch_sigterm
from omnimatte.train.curves import write_loss_curves
from omnimatte.render.plate_matte import NOISE_MARGIN
from omnimatte.train.loop import TrainingRun, train_model, training_match_threshold
from omnimatte.train.model_file import save_model
from omnimatte.train.settings import TrainConfig
from omnimatte.train.video import load_video

STAGE = "train"
log = get_logger(STAGE)


def run_train(sample: str, frames_dir: Path, flow_dir: Path, homography_dir: Path, masks_dir: Path,
              object_names: list[str], train_dir: Path, config: TrainConfig,
              effect_reach: float = BackgroundFitSettings.effect_reach) -> dict:
    """Train, then write the trained model (model.pt, which the render stage turns into layers), the loss curves
    and a summary into train_dir.

    The train folder's checkpoint.pt holds the newest unfinished state; it is removed once the model is written.
    model.pt holds the weights, the settings they were trained with (without the render-only switches, which the
    render stage takes from the config), the canvas size and the object names. `effect_reach` (object sizes,
    diagnose.background.effect_reach) is how far from its mask the canvas's starting plate distrusts what a frame
    shows, as an object's effects may lie there (starting_plate).
    """
    device = resolve_device(STAGE, sample, config.device)
    if device.type == "cpu" and config.cpu:
        log.info("%s: training on the CPU, so train.cpu settings apply: %s", sample, config.cpu)
        for name, value, on_cpu in config.set_but_replaced_on_cpu():
            log.warning("%s: train.%s is %s in the config, but train.cpu.%s (%s) replaces it on the CPU: set "
                        "train.cpu.%s to change it here", sample, name, value, name, on_cpu, name)
    config = config.for_device(device)
    files = TrainFiles(Path(train_dir))
    files.folder.mkdir(parents=True, exist_ok=True)
    log.info("%s: training on %s (%s)", sample, device, torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU")
    video = load_video(sample, frames_dir, flow_dir, homography_dir, masks_dir, object_names, config.trimap_band, device,
                       config.scale, canvas_plate=config.background == "canvas", effect_reach=effect_reach)
    log.info("%s: %d frames, trained at %dx%d (scale %g of %dx%d), %d layer(s) + background, canvas %dx%d", sample,
             video.num_frames, video.frames.shape[-1], video.frames.shape[-2], config.scale,
             video.output_frames.shape[-1], video.output_frames.shape[-2], len(object_names), video.canvas_size[1],
             video.canvas_size[0])
    match = training_match_threshold(video, config)
    if match > 0 and video.plate is not None:
        log.info("%s: the frames differ from the starting plate by %.4f (median, where only the background shows); "
                 "a pixel within %.4f of the background shows it (%s)", sample, video.background_noise, match,
                 "the setting" if match == config.background_match_threshold
                 else f"{NOISE_MARGIN:g} times that, over the setting's {config.background_match_threshold:g}")
    inputs = inputs_digest(frames_dir, flow_dir, homography_dir, masks_dir, object_names)
    began = time.perf_counter()
    with catch_sigterm() as stop:
        run = train_model(sample, video, config, files.checkpoint, device, stop=stop, inputs=inputs)
    train_seconds = time.perf_counter() - began
    save_model(files.model, run.model, config, video.canvas_size, object_names, inputs)
    write_loss_curves(run.history, files.losses_csv, files.losses_plot, run.checks, config.stop_alpha_tolerance,
                      config.stop_reconstruction_tolerance)
    summary = {"device": str(device), "steps": run.stop_step, "train_seconds_this_run": round(train_seconds, 2),
               "background_noise": round(video.background_noise, 5), "background_match_threshold": round(match, 5),
               "stopping": stopping_summary(run, config), "final_losses": run.history[-1] if run.history else {}}
    save_json(files.summary, summary)
    files.checkpoint.unlink(missing_ok=True)
    return summary


def stopping_summary(run: TrainingRun, config: TrainConfig) -> dict:
    """Why and when training stopped, the rule's settings and what each check measured, for summary.json."""
    return {"reason": run.stop_reason, "step": run.stop_step, "seconds": run.seconds,
            "expected_steps": config.steps, "min_steps": config.min_steps, "max_steps": config.max_steps,
            "check_every": config.stop_check_every, "check_frames": config.stop_check_frames,
            "patience": config.stop_patience, "alpha_tolerance": config.stop_alpha_tolerance,
            "reconstruction_tolerance": config.stop_reconstruction_tolerance,
            "average_decay": config.stop_average_decay, "checks": run.checks}
