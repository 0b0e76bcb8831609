"""Check 5, the trained layers: does each hold its object and what it causes, and nothing else?

Per layer:

* leak: its alpha beyond its object's reach (effect_reach object sizes from the mask, as the
  effects may lie; everywhere in frames where the object is absent) and not joined to what it holds
  within that reach through alpha of at least EMPTY, over its mask's area: a shadow cast long by a low
  sun runs on from the object past any fixed reach, while what the layer took up elsewhere lies apart;
* collapse: its mean alpha in its mask's core (graded downwards): a layer that lost its object;
* fill: the largest share of the frame it holds (alpha over one half);
* absorbed: the share of the background that breaks the camera model (checks 1 and 2) it holds;

for each pair of layers, overlap: the alpha both hold outside both masks over the smaller of
their alphas there (two layers claiming one shadow); and for the clip, missed: the share of the
frame, in the quarter of the frames where it is largest, where the reconstruction differs from
the frame past what the background's fit tolerates (noise, and registration across texture) and
no layer holds anything, outside the background that breaks the camera model (checks 1 and 2
report that, and the effect claim leaves out what of it stays put).
"""

from __future__ import annotations

import cv2
import numpy as np

from omnimatte.background_fit import BackgroundFit, local_score, reach_zone
from omnimatte.diagnose.findings import CheckResult, Finding, percent, worst_frames
from omnimatte.diagnose.inputs import Layers, SampleInputs
from omnimatte.diagnose.settings import LayerSettings

CHECK = "layers"
TITLE = "layers"
#: A layer holds a pixel where its alpha is at least this; no layer is there where every alpha is below EMPTY.
HELD = 0.5
EMPTY = 0.1
#: A mask's core: the mask eroded by this share of the frame's short side.
CORE_EROSION = 1 / 48
WORST_QUARTER = 75


def beyond_reach(alpha: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """Per frame (T, H, W) bool: outside `zone` (reach_zone) and not joined to the alpha within it through pixels
    (8-connected) where `alpha` (T, H, W, 0..1) is at least EMPTY."""
    beyond = ~zone
    for t in range(len(alpha)):
        held = alpha[t] >= EMPTY
        count, labels = cv2.connectedComponents(held.astype(np.uint8), connectivity=8)
        if count > 1:
            reached = np.unique(labels[zone[t] & held])
            beyond[t] &= ~np.isin(labels, reached[reached > 0])
    return beyond


def _core(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.stack([cv2.erode(m.astype(np.uint8), kernel) > 0 for m in mask])


def missed_share(inputs: SampleInputs, layers: Layers, fit: BackgroundFit) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the share of the frame where the reconstruction differs from the frame by more than the fit's
    residual threshold and no layer holds anything, outside the fit's unexplainable background (which checks 1 and
    2 report); and those pixels. The difference is measured in the fit's own
    tolerance (the frame's noise by brightness plus its registration tolerance across the plate's texture): the
    reconstruction's background is the same registered plate, resampled through the same homographies, so on
    textured ground it may miss by what the fit allows the plate itself."""
    height, width = inputs.shape
    empty = np.ones((inputs.num_frames, height, width), bool)
    for name in layers.rgba:
        empty &= layers.alpha(name) < EMPTY
    sigma = max(1.0, fit.settings.smoothing * min(height, width))
    where = np.zeros_like(empty)
    for t in range(inputs.num_frames):
        difference = inputs.frames[t].astype(np.float32) - layers.reconstruction[t].astype(np.float32)
        score = local_score(difference, fit.tolerance(t), empty[t], sigma)
        where[t] = empty[t] & ~fit.unexplainable(t) & (score > fit.settings.residual_threshold)
    return where.mean(axis=(1, 2)), where


def check_layers(inputs: SampleInputs, layers: Layers, fit: BackgroundFit, settings: LayerSettings) -> CheckResult:
    height, width = inputs.shape
    names = list(layers.rgba)
    findings: list[Finding] = []
    series: dict[str, np.ndarray] = {}
    flagged = np.zeros((inputs.num_frames, height, width), bool)
    radius = max(1, round(CORE_EROSION * min(height, width)))
    unexplainable = np.stack([fit.unexplainable(t) for t in range(fit.num_frames)])
    alphas = {name: layers.alpha(name) for name in names}
    for name in names:
        alpha, mask = alphas[name], inputs.masks[name]
        beyond = beyond_reach(alpha, reach_zone(mask, fit.settings.effect_reach))
        far = alpha * beyond
        leak = float(far.sum() / max(mask.sum(), 1))
        series[f"{name}_leak"] = far.sum(axis=(1, 2)) / max(mask.sum() / len(mask), 1)
        flagged |= (alpha >= EMPTY) & beyond
        findings.append(Finding(
            CHECK, "leak", leak, "of the mask's area", settings.leak_warn, settings.leak_fail,
            f"Layer '{name}' holds alpha worth {percent(leak)} of its mask's area beyond {fit.settings.effect_reach:g} "
            f"object sizes from its object (or in frames without it), apart from what it holds within that reach.",
            "Nothing the object does reaches that far: the layer took up background the model could not explain (see "
            "checks 1 and 2) or another object's effect. The edits will carry it along with the object.",
            frames=worst_frames(series[f"{name}_leak"]), subject=name))
        core = _core(mask, radius)
        present = core.sum(axis=(1, 2)) > 0
        held = float(alpha[core].mean()) if core.any() else float("nan")
        findings.append(Finding(
            CHECK, "collapse", held, "mean alpha", settings.collapse_warn, settings.collapse_fail,
            f"Layer '{name}' holds a mean alpha of {held:.2f} well inside its mask ({int(present.sum())} frames).",
            "The layer has lost its object: the background or another layer took it. Check that the object moves "
            "against the background and that its mask is right; train longer, or with another seed.",
            higher_is_better=True, subject=name))
        cover = (alpha >= HELD).mean(axis=(1, 2))
        series[f"{name}_cover"] = cover
        findings.append(Finding(
            CHECK, "fill", float(cover.max()), "share of the frame", settings.fill_warn, settings.fill_fail,
            f"Layer '{name}' holds up to {percent(float(cover.max()))} of the frame (frame {int(cover.argmax())}).",
            "A layer that fills the frame has taken the background's place: the background was not learnt there. "
            "Check the camera model (check 1) and the exposure (check 3).",
            frames=worst_frames(cover), subject=name))
        if unexplainable.sum() >= fit.settings.min_region * height * width * inputs.num_frames:
            absorbed = float(alpha[unexplainable].mean())
            findings.append(Finding(
                CHECK, "absorbed", absorbed, "mean alpha", settings.absorbed_warn, settings.absorbed_fail,
                f"Layer '{name}' holds a mean alpha of {absorbed:.2f} over the background that breaks the camera model.",
                "That background is not the object's effect, yet the layer carries it: removing the object will also "
                "remove it, and the colour pop will keep it. See checks 1 and 2 for what to do.", subject=name))
    background_only = np.ones((inputs.num_frames, height, width), bool)
    for name in names:
        background_only &= ~inputs.masks[name]
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            first, second = alphas[names[a]] * background_only, alphas[names[b]] * background_only
            both = float(np.minimum(first, second).sum() / max(min(first.sum(), second.sum()), 1.0))
            findings.append(Finding(
                CHECK, "overlap", both, "share of the smaller layer's alpha outside the masks", settings.overlap_warn,
                settings.overlap_fail,
                f"Layers '{names[a]}' and '{names[b]}' both hold {percent(both)} of the smaller one's alpha outside "
                "the masks.",
                "Two layers claim one region (a shadow, a reflection): each carries part of it, so editing one object "
                "leaves half the effect behind. The effect may belong to a third thing; otherwise train with another "
                "seed (check 6).", subject=f"{names[a]}+{names[b]}"))
    missed, where = missed_share(inputs, layers, fit)
    series["missed"] = missed
    flagged |= where
    graded = float(np.percentile(missed, WORST_QUARTER))
    findings.append(Finding(
        CHECK, "missed", graded, "share of the frame", settings.missed_warn, settings.missed_fail,
        f"In a quarter of the frames the reconstruction misses at least {percent(graded)} of the frame where no layer "
        f"holds anything (largest {percent(float(missed.max()))}, frame {int(missed.argmax())}).",
        "There the background is wrong and no layer makes up for it: the removal and the new background will show it. "
        "See checks 1 to 3.", frames=worst_frames(missed)))
    return CheckResult(CHECK, TITLE, findings, series, flagged)
