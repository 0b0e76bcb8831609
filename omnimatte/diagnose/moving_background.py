"""Check 2, a moving background: regions outside every mask that keep changing in the registered frames.

From background_fit: canvas pixels that keep changing from frame to frame in the frames that
show them with no object near (water, foliage, screens, flags), and regions that move on their
own, coherently and not along the camera's motion, that no object carries (an unmasked person,
a car, a crowd). The figure is the share of the free background they cover, graded in the
quarter of the frames where it is largest.
"""

from __future__ import annotations

import numpy as np

from omnimatte.background_fit import BackgroundFit
from omnimatte.diagnose.findings import CheckResult, Finding, percent, worst_frames
from omnimatte.diagnose.settings import MovingBackgroundSettings

CHECK = "moving_background"
TITLE = "moving background"
WORST_QUARTER = 75


def check_moving_background(fit: BackgroundFit, settings: MovingBackgroundSettings) -> CheckResult:
    flagged = fit.moving | fit.mover
    free = np.maximum(fit.free.sum(axis=(1, 2)), 1)
    share = flagged.sum(axis=(1, 2)) / free
    graded = float(np.percentile(share, WORST_QUARTER))
    changing = float(fit.moving.sum() / max(flagged.sum(), 1))
    if changing >= 0.5:
        kind = ("Most of it changes in place from frame to frame (water, foliage, a screen, a flag): the static "
                "background cannot hold it, so the nearest layers take it up as if their object caused it.")
        fix = ("Mask the region as an object of its own (its layer then holds the motion), crop it out, or accept "
               "that the layers near it carry its motion.")
    else:
        kind = ("Most of it moves through the frame on its own, coherently, with no mask (a person, a car, a crowd): "
                "no layer is meant for it, so the background smears it or a layer of another object takes it.")
        fix = "Give it a mask (add it as an object in the sample's objects), or crop it out."
    finding = Finding(
        CHECK, "moving", graded, "share of the background", settings.share_warn, settings.share_fail,
        f"In a quarter of the frames at least {percent(graded)} of the background outside the masks moves by itself "
        f"(largest {percent(float(share.max()))}, frame {int(share.argmax())}).",
        kind + " " + fix, frames=worst_frames(share))
    return CheckResult(CHECK, TITLE, [finding], {"moving": share}, flagged)
