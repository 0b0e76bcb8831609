"""The diagnose stage: run every check on a trained sample, write what they found, say it in one line.

Reads the sample's frames, masks, flow, homographies and layers; fits the registered background
once (omnimatte/background_fit.py) and runs the checks on it: 1 the camera model, 2 a moving
background, 3 exposure and white balance, 4 the masks, 5 the layers, and 6 the agreement of two
seeds when a second training is given. Writes diagnostics.json, diagnostics.png, the flagged
regions for the overview video and the report's table, and logs one line with the verdict.
With `strict`, a fail stops the stage with the failing finding's message and what to do.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from omnimatte.background_fit import BackgroundFit, fit_background
from omnimatte.background_fit_stage import load_background_fit
from omnimatte.diagnose.camera_model import check_camera_model
from omnimatte.diagnose.drawing import draw_diagnostics
from omnimatte.diagnose.exposure import check_exposure
from omnimatte.diagnose.findings import FAIL, OK, CheckResult, worst
from omnimatte.diagnose.inputs import STAGE, SampleInputs, read_sample
from omnimatte.diagnose.layers import check_layers
from omnimatte.diagnose.masks import check_masks
from omnimatte.diagnose.moving_background import check_moving_background
from omnimatte.diagnose.outputs import write_flags, write_report, write_table
from omnimatte.diagnose.seeds import check_seeds
from omnimatte.diagnose.settings import DiagnoseSettings
from omnimatte.errors import StageError
from omnimatte.logs import get_logger

log = get_logger(STAGE)


def run_checks(inputs: SampleInputs, settings: DiagnoseSettings,
               fit: BackgroundFit | None = None) -> tuple[BackgroundFit, list[CheckResult]]:
    """The background's fit (`fit`, or made here) and every check's result on a read sample (layers and seeds only
    when given)."""
    with tqdm(total=6, desc=f"{inputs.sample}: diagnose", unit="check") as progress:
        if fit is None:
            fit = fit_background(inputs.frames, inputs.camera, inputs.masks, inputs.flow,
                                 settings.background.fit_settings())
        progress.update()
        results = [check_camera_model(inputs, fit, settings.camera_model)]
        progress.update()
        results.append(check_moving_background(fit, settings.moving_background))
        results.append(check_exposure(fit, settings.exposure))
        progress.update(2)
        results.append(check_masks(inputs, settings.masks))
        progress.update()
        if inputs.layers is not None:
            results.append(check_layers(inputs, inputs.layers, fit, settings.layers))
        if inputs.layers is not None and inputs.second_layers is not None:
            results.append(check_seeds(inputs.layers, inputs.second_layers, settings.seeds))
        progress.update()
    return fit, results


def summary_line(sample: str, verdict: str, results: list[CheckResult]) -> str:
    """One line: the verdict, each check's, and the worst finding's message."""
    checks = ", ".join(f"{result.title} {result.verdict}" for result in results)
    line = f"{sample}: diagnose {verdict.upper()} ({checks})"
    flagged = [result.worst_finding for result in results if result.worst_finding is not None]
    if flagged:
        first = max(flagged, key=lambda f: (f.verdict == FAIL, f.figure if f.figure == f.figure else 0))
        line += f": {first.check}" + (f" [{first.subject}]" if first.subject else "") + f": {first.message}"
    return line


def diagnose(inputs: SampleInputs, settings: DiagnoseSettings, report_path: Path, sheet_path: Path,
             flags_path: Path, table_path: Path, fit: BackgroundFit | None = None) -> dict:
    """Run the checks on a read sample (on `fit`, the background's, or one made here) and write their outputs;
    returns diagnostics.json's content."""
    started = time.perf_counter()
    fit, results = run_checks(inputs, settings, fit)
    return write_diagnosis(inputs, settings, fit, results, time.perf_counter() - started, report_path, sheet_path,
                           flags_path, table_path)


def write_diagnosis(inputs: SampleInputs, settings: DiagnoseSettings, fit: BackgroundFit, results: list[CheckResult],
                    seconds: float, report_path: Path, sheet_path: Path, flags_path: Path, table_path: Path) -> dict:
    """Write what the checks found (diagnostics.json, diagnostics.png, the flagged regions, the report's table),
    log the verdict and each finding that is not ok, and with `strict` fail on a fail; returns diagnostics.json's
    content."""
    verdict = worst([result.verdict for result in results])
    summary = summary_line(inputs.sample, verdict, results)
    shown = draw_diagnostics(sheet_path, inputs, fit, results, verdict, settings.frames_shown)
    measured = {"noise_levels": {"median": round(float(np.median(fit.noise)), 3),
                                 "per_frame": [round(float(n), 3) for n in fit.noise]},
                "flow_noise_px": round(fit.flow_noise, 4), "seconds": round(seconds, 2),
                "layers_checked": inputs.layers is not None, "seeds_checked": inputs.second_layers is not None}
    report = write_report(report_path, inputs.sample, verdict, summary, results, measured, shown)
    write_flags(flags_path, results)
    write_table(table_path, inputs.sample, verdict, summary, results)
    (log.info if verdict == OK else log.warning)("%s", summary)
    for result in results:
        for finding in result.findings:
            if finding.verdict != OK:
                log.warning("%s: %s %s%s: %s", inputs.sample, finding.verdict.upper(), finding.check,
                            f" [{finding.subject}]" if finding.subject else "", finding.text)
    if settings.strict and verdict == FAIL:
        failing = [f for r in results for f in r.findings if f.verdict == FAIL]
        raise StageError(STAGE, inputs.sample, "; ".join(f"{f.check}" + (f" [{f.subject}]" if f.subject else "")
                                                         + f": {f.message}" for f in failing),
                         " ".join(dict.fromkeys(f.advice for f in failing))
                         + " (diagnose.strict is set: set it to false to keep going with these layers)")
    return report


def run_diagnose(sample: str, frames_dir: Path, masks_dir: Path, object_names: list[str], homography_dir: Path,
                 flow_dir: Path | None, omnimatte_dir: Path | None, report_path: Path, sheet_path: Path,
                 flags_path: Path, table_path: Path, settings: DiagnoseSettings,
                 second_omnimatte_dir: Path | None = None, background_fit_file: Path | None = None) -> dict:
    """Read a sample's stage outputs and diagnose it (see `diagnose`), on the background_fit stage's fit in
    `background_fit_file` (refused unless made with the settings' background section) or one made here."""
    inputs = read_sample(sample, frames_dir, masks_dir, object_names, homography_dir, flow_dir, omnimatte_dir,
                         second_omnimatte_dir)
    log.info("%s: diagnosing %d frames of %dx%d, objects %s%s", sample, inputs.num_frames, inputs.shape[1],
             inputs.shape[0], ", ".join(object_names), "" if omnimatte_dir else " (no layers: checks 1-4 only)")
    fit = None
    if background_fit_file is not None:
        fit = load_background_fit(STAGE, sample, Path(background_fit_file), settings.background.fit_settings(),
                                  inputs.num_frames, inputs.shape)
    return diagnose(inputs, settings, Path(report_path), Path(sheet_path), Path(flags_path), Path(table_path), fit)
