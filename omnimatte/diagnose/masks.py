"""Check 4, the coarse masks: do they follow their objects from frame to frame, and leave background to work with?

Per object:

* area jump: the largest relative change of the mask's area from one frame to the next (frames
  where it is empty are left out: the object enters or leaves);
* flow disagreement: the mask carried to the next frame by the flow, against that frame's mask:
  the share of their union where they differ by more than a tolerance of a few px, where no
  object in front hides the object, largest over the clip. Where the flow loses a small, fast
  object (its confidence there is low), the mask shifted as a whole by the phase correlation of
  the two masks is the other witness: the figure is the smaller of the two disagreements;
* edge: the share of frames in which the mask touches the frame's edge;
* cover: the largest share of the frame the mask covers.

The map marks, in the frames where the flow disagrees past the warning, where it does.
"""

from __future__ import annotations

import cv2
import numpy as np

from omnimatte.background_fit import FlowFields
from omnimatte.diagnose.findings import CheckResult, Finding, percent, worst_frames
from omnimatte.diagnose.inputs import SampleInputs
from omnimatte.diagnose.settings import MaskSettings

CHECK = "masks"
TITLE = "masks"
#: Mask edges that the flow and the mask place within this share of the frame's short side (and 2 px) agree.
EDGE_TOLERANCE = 0.01


def area_jumps(mask: np.ndarray) -> np.ndarray:
    """Per frame t (T,), the relative change of the mask's area from frame t - 1 (0 for the first frame and
    where either is empty)."""
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    jumps = np.zeros(len(mask))
    both = (area[1:] > 0) & (area[:-1] > 0)
    jumps[1:][both] = np.abs(np.diff(area))[both] / np.maximum(area[1:], area[:-1])[both]
    return jumps


def carried(mask: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Frame t's (H, W) bool mask carried to frame t + 1 by the backward flow (t + 1 -> t), (H, W) bool."""
    height, width = mask.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    sampled = cv2.remap(mask.astype(np.float32), xs + backward[..., 0], ys + backward[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return sampled >= 0.5


def shifted(mask: np.ndarray, onto: np.ndarray) -> np.ndarray:
    """An (H, W) bool mask moved as a whole by the shift that the phase correlation of the two masks finds."""
    (dx, dy), _ = cv2.phaseCorrelate(mask.astype(np.float64), onto.astype(np.float64))
    height, width = mask.shape
    moved = cv2.warpAffine(mask.astype(np.float32), np.float32([[1, 0, dx], [0, 1, dy]]), (width, height),
                           flags=cv2.INTER_LINEAR, borderValue=0)
    return moved >= 0.5


def _apart(predicted: np.ndarray, actual: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Where two masks differ by more than the kernel's reach: each one's pixels beyond the other grown."""
    grown_predicted = cv2.dilate(predicted.astype(np.uint8), kernel) > 0
    grown_actual = cv2.dilate(actual.astype(np.uint8), kernel) > 0
    return (actual & ~grown_predicted) | (predicted & ~grown_actual)


def flow_disagreement(masks: list[np.ndarray], index: int, flow: FlowFields, tolerance: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """For object `index` of the masks (back to front, (T, H, W) bool each): per frame t (T,), the share of the union
    of its mask at t and its mask at t - 1 carried by the flow (or shifted as a whole, whichever agrees better) that
    differs by more than `tolerance` px, where no object in front hides it at t (0 for the first frame); and those
    pixels, (T, H, W) bool."""
    mask = masks[index]
    count = len(mask)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    shares = np.zeros(count)
    where = np.zeros(mask.shape, bool)
    for t in range(1, count):
        hidden = np.zeros(mask.shape[1:], bool)
        for front in masks[index + 1:]:
            hidden |= front[t]
        actual = mask[t] & ~hidden
        if not actual.any() or not mask[t - 1].any():
            continue
        witnesses = []
        for predicted in (carried(mask[t - 1], flow.backward[t - 1]), shifted(mask[t - 1], mask[t])):
            predicted &= ~hidden
            differs = _apart(predicted, actual, kernel)
            witnesses.append((differs.sum() / max((predicted | actual).sum(), 1), differs))
        shares[t], where[t] = min(witnesses, key=lambda w: w[0])
    return shares, where


def touches_edge(mask: np.ndarray) -> np.ndarray:
    """Per frame (T,), whether the mask reaches the frame's outermost rows or columns."""
    return mask[:, 0, :].any(axis=1) | mask[:, -1, :].any(axis=1) | mask[:, :, 0].any(axis=1) | mask[:, :, -1].any(axis=1)


def check_masks(inputs: SampleInputs, settings: MaskSettings) -> CheckResult:
    height, width = inputs.shape
    names = list(inputs.masks)
    masks = [inputs.masks[name] for name in names]
    tolerance = max(2, round(EDGE_TOLERANCE * min(height, width)))
    findings: list[Finding] = []
    series: dict[str, np.ndarray] = {}
    flagged = np.zeros((inputs.num_frames, height, width), bool)
    for index, name in enumerate(names):
        mask = masks[index]
        jumps = area_jumps(mask)
        series[f"{name}_area"] = mask.sum(axis=(1, 2)) / (height * width)
        series[f"{name}_area_jump"] = jumps
        findings.append(Finding(
            CHECK, "area_jump", float(jumps.max()), "relative change", settings.area_jump_warn, settings.area_jump_fail,
            f"The mask of '{name}' changes its area by up to {percent(float(jumps.max()))} from one frame to the next "
            f"(frame {int(jumps.argmax())}).",
            "A mask that jumps tells the network the object is somewhere it is not: its layer takes background there, "
            "or loses part of the object. Fix the mask in those frames (the picker, or your own masks).",
            frames=worst_frames(jumps), subject=name))
        if inputs.flow is not None:
            shares, where = flow_disagreement(masks, index, inputs.flow, tolerance)
            series[f"{name}_flow_disagreement"] = shares
            bad = shares >= settings.flow_disagreement_warn
            flagged[bad] |= where[bad]
            findings.append(Finding(
                CHECK, "flow_disagreement", float(shares.max()), "share of the mask", settings.flow_disagreement_warn,
                settings.flow_disagreement_fail,
                f"The flow carries the mask of '{name}' onto the next frame's with up to {percent(float(shares.max()))} "
                f"of them apart by more than {tolerance} px (frame {int(shares.argmax())}).",
                "The mask does not move with its object there (a late or early mask, a mask of something else): the "
                "layer learns the object from the flow and the mask at once and follows neither well. Fix the mask in "
                "those frames.", frames=worst_frames(shares), subject=name))
        edge = touches_edge(mask)
        findings.append(Finding(
            CHECK, "edge", float(edge.mean()), "share of frames", settings.edge_warn, settings.edge_fail,
            f"The mask of '{name}' touches the frame's edge in {percent(float(edge.mean()))} of the frames.",
            "Part of the object is out of view (or its mask bleeds to the edge): its layer holds only what is in view, "
            "and effects beyond the edge cannot be given to it. If the object is in view, tighten its mask.",
            frames=[int(t) for t in np.flatnonzero(edge)[:3]], subject=name))
        cover = series[f"{name}_area"]
        findings.append(Finding(
            CHECK, "cover", float(cover.max()), "share of the frame", settings.cover_warn, settings.cover_fail,
            f"The mask of '{name}' covers up to {percent(float(cover.max()))} of the frame (frame {int(cover.argmax())}).",
            "So little background is left that registration and the background have little to work with, and what "
            "the mask covers beyond the object may end in its layer. Tighten the mask, or use a wider shot.",
            frames=worst_frames(cover), subject=name))
    return CheckResult(CHECK, TITLE, findings, series, flagged)
