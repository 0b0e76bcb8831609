"""The background fit as a stage of its own: fitted once per sample, read by the render and diagnose stages.

The fit (background_fit.py) takes seconds a frame's hundredth: the render stage's effect claim and the diagnose
stage's checks both read it, so it is made once, after the flow and the homographies, and written to
results/{sample}/background_fit.npz with the settings it was made with. A reader names the settings it expects and
the frames it reads; a file made with other settings or for other frames is refused with what to rerun, never used.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from omnimatte.background_fit import BackgroundFit, BackgroundFitSettings, fit_background
from omnimatte.camera import Camera
from omnimatte.errors import StageError
from omnimatte.io import atomic_path
from omnimatte.logs import get_logger

STAGE = "background_fit"
log = get_logger(STAGE)

# The fit's (T, H, W) bool maps, stored packed (a bit a pixel).
MAPS = ("free", "near", "unfit", "moving", "mover", "parallax", "misfit")
# Its arrays stored as they are.
ARRAYS = ("registration_error", "plate", "gains", "noise", "noise_curves", "camera_motion", "residual", "change",
          "flow_residual")


def save_background_fit(path: Path, fit: BackgroundFit) -> None:
    """Write `fit` to `path` (.npz), atomically."""
    content = {name: getattr(fit, name) for name in ARRAYS}
    content.update({name: np.packbits(getattr(fit, name), axis=-1) for name in MAPS})
    content.update(settings=np.array(json.dumps(dataclasses.asdict(fit.settings), sort_keys=True)),
                   homographies=fit.camera.homographies, canvas_size=np.array(fit.camera.canvas_size),
                   flow_noise=np.array(fit.flow_noise))
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **content)


def load_background_fit(stage: str, sample: str, path: Path, settings: BackgroundFitSettings, num_frames: int,
                        shape: tuple[int, int]) -> BackgroundFit:
    """The fit in `path`, for the `stage` reading it: refused unless it was made with `settings` for `num_frames`
    frames of `shape` (height, width)."""
    rerun = "rerun the background_fit stage (snakemake --forcerun background_fit)"
    if not Path(path).is_file():
        raise StageError(stage, sample, f"the background fit {path} is missing", rerun)
    try:
        with np.load(path) as stored:
            content = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise StageError(stage, sample, f"the background fit {path} cannot be read: {err}", rerun) from err
    missing = [name for name in (*ARRAYS, *MAPS, "settings", "homographies", "canvas_size", "flow_noise")
               if name not in content]
    if missing:
        raise StageError(stage, sample, f"the background fit {path} lacks {', '.join(missing)}", rerun)
    made_with = json.loads(str(content["settings"]))
    expected = dataclasses.asdict(settings)
    if made_with != expected:
        changed = ", ".join(f"{key} {made_with.get(key)!r} (now {value!r})" for key, value in expected.items()
                            if made_with.get(key) != value)
        raise StageError(stage, sample, f"the background fit {path} was made with other settings: {changed}", rerun)
    frames = (num_frames, *shape)
    if content["residual"].shape != frames:
        raise StageError(stage, sample, f"the background fit {path} is for {content['residual'].shape[0]} frames of "
                         f"{content['residual'].shape[2]}x{content['residual'].shape[1]}, the frames are "
                         f"{num_frames} of {shape[1]}x{shape[0]}", rerun)
    maps = {name: np.unpackbits(content[name], axis=-1, count=shape[1]).astype(bool) for name in MAPS}
    camera = Camera(content["homographies"], tuple(int(side) for side in content["canvas_size"]))
    return BackgroundFit(settings=settings, camera=camera, flow_noise=float(content["flow_noise"]),
                         **{name: content[name] for name in ARRAYS}, **maps)


def unexplained_maps(fit: BackgroundFit) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) bool each: where the background moves by itself (the fit's `moves_by_itself`:
    parallax, water, an unmasked mover) and where it fits nothing far from the objects (`misfit`, apart from that):
    what the effect claim leaves out."""
    moving = np.stack([fit.moves_by_itself(t) for t in range(fit.num_frames)])
    return moving, fit.misfit & ~moving


def moving_and_misfit_shares(fit: BackgroundFit, moving: np.ndarray, misfit: np.ndarray) -> tuple[float, float]:
    """The shares of the background outside the masks that `moving` and `misfit` (unexplained_maps) cover."""
    counted = max(int(fit.free.sum()), 1)
    return float(moving.sum() / counted), float(misfit.sum() / counted)


def run_background_fit(sample: str, frames_dir: Path, masks_dir: Path, object_names: list[str], homography_dir: Path,
                       flow_dir: Path, settings: BackgroundFitSettings, out: Path) -> BackgroundFit:
    """Fit the sample's registered background (background_fit.fit_background) and write it to `out`."""
    from omnimatte.diagnose.inputs import read_sample

    inputs = read_sample(sample, frames_dir, masks_dir, object_names, homography_dir, flow_dir, stage=STAGE)
    began = time.perf_counter()
    fit = fit_background(inputs.frames, inputs.camera, inputs.masks, inputs.flow, settings)
    moving, misfit = moving_and_misfit_shares(fit, *unexplained_maps(fit))
    log.info("%s: the background fit of %d frames (%.1f s) finds %.2f%% of the background outside the masks moving "
             "over it by itself (parallax, water, an unmasked mover) and %.2f%% fitting nothing far from the "
             "objects", sample, fit.num_frames, time.perf_counter() - began, 100 * moving, 100 * misfit)
    save_background_fit(Path(out), fit)
    return fit
