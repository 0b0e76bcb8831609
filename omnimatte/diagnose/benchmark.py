"""Diagnose on a clip a benchmark suite has trained and scored: the verdicts for the suite's table.

The fast and rendered suites leave each clip's frames, masks, flow, homographies and rendered layers in
its work folder, as the pipeline leaves a sample's; the checks run on them with the config's defaults and
write the stage's files there. Where the renderer knows the region one homography a frame cannot explain
(a rendered clip's gt/unexplained/: props under a translating camera, a pond), the row also says how well
the background checks' flagged map covers it: the IoU of the map of the camera-model and moving-background
checks that are not ok against that region where at least half of a pixel is in it, over the pixels
outside the objects' grown masks (the checks score nothing under them).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from omnimatte.background_fit import BackgroundFit
from omnimatte.diagnose.findings import OK, CheckResult, worst
from omnimatte.diagnose.inputs import SampleInputs, read_sample
from omnimatte.diagnose.run import run_checks, write_diagnosis
from omnimatte.diagnose.settings import DiagnoseSettings

#: The checks whose maps say where the background breaks the model.
BACKGROUND_CHECKS = ("camera_model", "moving_background")
#: A pixel of the renderer's unexplained map is in the true region when at least this share of it is (of 255).
UNEXPLAINED_SHARE = 0.5


def flagged_background(results: list[CheckResult]) -> np.ndarray | None:
    """(T, H, W) bool: where the background checks that are not ok flag the clip (None: none has a map)."""
    checked = [r for r in results if r.check in BACKGROUND_CHECKS and r.flagged is not None]
    if not checked:
        return None
    flagged = np.zeros_like(checked[0].flagged)
    for result in checked:
        if result.verdict != OK:
            flagged |= result.flagged
    return flagged


def unexplained_iou(results: list[CheckResult], fit: BackgroundFit, unexplained: np.ndarray) -> float | None:
    """The IoU of the background checks' flagged map against the renderer's unexplained map ((T, H, W) uint8
    shares) thresholded at UNEXPLAINED_SHARE, over the pixels outside the grown masks; None where the clip has
    no such region there."""
    truth = (unexplained >= UNEXPLAINED_SHARE * 255) & fit.free
    flagged = flagged_background(results)
    if flagged is None or not truth.any():
        return None
    return float((flagged & truth).sum() / (flagged | truth).sum())


def diagnosis_row(results: list[CheckResult], fit: BackgroundFit, seconds: float,
                  unexplained: np.ndarray | None = None) -> dict:
    """What a suite's table and benchmark.json record of a clip's diagnosis: the verdict, the checks that are
    not ok (`check verdict`, comma-separated; empty when none), the seconds it took and, given the renderer's
    unexplained map, unexplained_iou."""
    flagged = ", ".join(f"{r.check} {r.verdict}" for r in results if r.verdict != OK)
    iou = unexplained_iou(results, fit, unexplained) if unexplained is not None else None
    return {"diagnose": worst([r.verdict for r in results]), "diagnose_flagged": flagged,
            "unexplained_iou": None if iou is None else round(iou, 4), "diagnose_seconds": round(seconds, 1)}


def diagnose_inputs(inputs: SampleInputs, work: Path, settings: DiagnoseSettings = DiagnoseSettings(),
                    unexplained: np.ndarray | None = None) -> dict:
    """Diagnose a read clip into work/ (diagnostics.json, diagnostics.png, diagnostics_flags.npz,
    diagnostics.html) and return its row (diagnosis_row) and each check's verdict and findings that are not ok
    (`checks`, for benchmark.json)."""
    work = Path(work)
    started = time.perf_counter()
    fit, results = run_checks(inputs, settings)
    seconds = time.perf_counter() - started
    write_diagnosis(inputs, settings, fit, results, seconds, work / "diagnostics.json", work / "diagnostics.png",
                    work / "diagnostics_flags.npz", work / "diagnostics.html")
    checks = {r.check: {"verdict": r.verdict, "findings": [f"{f.verdict}: {f.name}" + (f" [{f.subject}]" if f.subject
                                                                                      else "") + f": {f.message}"
                                                           for f in r.findings if f.verdict != OK]}
              for r in results}
    return {"row": diagnosis_row(results, fit, seconds, unexplained), "checks": checks}


def diagnose_scored_clip(name: str, work: Path, object_names: list[str], unexplained: np.ndarray | None = None,
                         settings: DiagnoseSettings = DiagnoseSettings()) -> dict:
    """Diagnose the clip a suite left in work/ (frames/, masks/, flow/, homography/, omnimatte/) with its layers;
    see diagnose_inputs."""
    work = Path(work)
    inputs = read_sample(name, work / "frames", work / "masks", object_names, work / "homography", work / "flow",
                         work / "omnimatte")
    return diagnose_inputs(inputs, work, settings, unexplained)
