"""Stage 5b: the trained model (train/model.pt) rendered into the output contract's layers.

Apart from training so that a rendering switch (train.fit_shadows, train.sample_background, ...) changed in
the config reruns this stage alone from the trained weights; the background's fit, which only the effect claim
here reads, is no input of training (Snakemake runs the two side by side where the cores it is given allow).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from omnimatte.background_fit import BackgroundFitSettings
from omnimatte.devices import resolve_device
from omnimatte.errors import StageError
from omnimatte.fingerprint import inputs_digest
from omnimatte.logs import get_logger
from omnimatte.render.settings import RenderSettings
from omnimatte.render.writing import render_layers
from omnimatte.train import TrainConfig, build_model, load_video
from omnimatte.train.model_file import load_model

STAGE = "render"
log = get_logger(STAGE)


def run_render(sample: str, frames_dir: Path, flow_dir: Path, homography_dir: Path, masks_dir: Path,
               object_names: list[str], model_path: Path, out_dir: Path, settings: TrainConfig,
               background_fit: BackgroundFitSettings = BackgroundFitSettings(),
               background_fit_file: Path | None = None) -> dict:
    """Render the model in `model_path` (the train stage's, trained on these inputs) into `out_dir` with the
    rendering switches of `settings` (the config's train section) and return the layers' summary (writing.py).

    With the effect claim, the stray cut or the background detail on, the background's fit with `background_fit`
    (the config's diagnose.background) is read from `background_fit_file` (the background_fit stage's), or made
    first without it: where the camera model cannot explain the background, the claim leaves out more readily what
    stays put there, the stray cut gives no layer what moves over the background by itself away from the masks, and
    where the fit finds nothing but the background, the background detail takes the frame's own pixels.
    """
    device = resolve_device(STAGE, sample, settings.device)
    inputs = inputs_digest(frames_dir, flow_dir, homography_dir, masks_dir, object_names)
    trained = load_model(STAGE, sample, model_path, settings.for_device(device), object_names, inputs)
    config = trained.config
    rendering = RenderSettings.from_config(config)
    video = load_video(sample, frames_dir, flow_dir, homography_dir, masks_dir, object_names, config.trimap_band,
                       device, config.scale, canvas_plate=False,
                       background_fit=background_fit if rendering.reads_background_fit else None,
                       background_fit_file=background_fit_file, effect_reach=background_fit.effect_reach,
                       stage=STAGE)
    if tuple(video.canvas_size) != trained.canvas_size:
        raise StageError(STAGE, sample, f"the trained model's canvas is {trained.canvas_size[1]}x"
                         f"{trained.canvas_size[0]}, these homographies give {video.canvas_size[1]}x"
                         f"{video.canvas_size[0]}", "rerun the train stage (snakemake --forcerun train)")
    # The canvas background starts from a plate of its size; the trained canvas replaces it below.
    plate = trained.state.get("canvas.grids.0") if config.background == "canvas" else None
    model = build_model(dataclasses.replace(video, plate=plate), config, device)
    try:
        model.load_state_dict(trained.state)
    except RuntimeError as err:
        raise StageError(STAGE, sample, f"the trained model {model_path} does not fit the model its settings "
                         f"describe: {err}", "rerun the train stage (snakemake --forcerun train)") from err
    began = time.perf_counter()
    summary = render_layers(model, video, rendering, Path(out_dir), sample)
    log.info("%s: rendered %d frames in %.1f s; reconstruction PSNR %.2f dB (model), %.2f dB (with detail "
             "transfer)", sample, video.num_frames, time.perf_counter() - began, summary["psnr_model"],
             summary["psnr_output"])
    return summary
