"""Check 6 (optional, costly), the network's initialisation: do two trainings that differ only in their seed agree?

The workflow trains the sample a second time with train.seed + diagnose.seeds.seed_offset (rule
train_second_seed) when diagnose.seeds.enabled is set. Per layer, the figure is the soft IoU of
the two trainings' alphas over the clip (graded downwards): where they disagree, which object a
region goes to was decided by chance, not by the footage.
"""

from __future__ import annotations

import numpy as np

from omnimatte.diagnose.findings import CheckResult, Finding, worst_frames
from omnimatte.diagnose.inputs import Layers
from omnimatte.diagnose.settings import SeedSettings

CHECK = "seeds"
TITLE = "agreement of two seeds"
#: A pixel counts as disagreeing in the map where the two alphas differ by more than this.
DISAGREEMENT = 0.5


def soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = float(np.maximum(a, b).sum())
    return float(np.minimum(a, b).sum()) / union if union > 0 else 1.0


def check_seeds(first: Layers, second: Layers, settings: SeedSettings) -> CheckResult:
    findings, series = [], {}
    flagged = None
    for name in first.rgba:
        a, b = first.alpha(name), second.alpha(name)
        agreement = soft_iou(a, b)
        per_frame = np.array([soft_iou(x, y) for x, y in zip(a, b)])
        series[f"{name}_agreement"] = per_frame
        apart = np.abs(a - b) > DISAGREEMENT
        flagged = apart if flagged is None else flagged | apart
        findings.append(Finding(
            CHECK, "agreement", agreement, "soft IoU", settings.agreement_warn, settings.agreement_fail,
            f"Two trainings with different seeds give layer '{name}' alphas with a soft IoU of {agreement:.2f}.",
            "Where they differ, the network's starting point decided what went to this layer, not the footage: trust "
            "neither there. Improve the masks (each object's own, nothing else's) or train longer.",
            higher_is_better=True, frames=worst_frames(1 - per_frame), subject=name))
    return CheckResult(CHECK, TITLE, findings, series, flagged)
