"""Scores omnimattes against ground-truth layers (the synthetic clips carry them).

Per object: soft IoU of the alphas, the share of the effect (e.g. the shadow) that
the layer captured, and the alpha that leaked outside the true layer; for the
whole clip: background and reconstruction PSNR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnimatte.errors import StageError
from omnimatte.io import list_frames, read_frames, save_json
from omnimatte.logs import get_logger

STAGE = "evaluate"
log = get_logger(STAGE)


def soft_iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Sum of minima over sum of maxima: 1 for identical mattes, 0 for disjoint ones."""
    union = np.maximum(alpha, truth).sum()
    return float(np.minimum(alpha, truth).sum() / union) if union > 0 else 1.0


def effect_recall(alpha: np.ndarray, effect: np.ndarray) -> float:
    """The share of the effect's alpha (where the object itself is absent) that the layer holds."""
    total = effect.sum()
    return float(np.minimum(alpha, effect).sum() / total) if total > 0 else float("nan")


def alpha_leak(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Alpha beyond the true layer's, relative to the true layer's total alpha."""
    total = truth.sum()
    return float(np.clip(alpha - truth, 0, None).sum() / total) if total > 0 else float("nan")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 image stacks."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def evaluate(sample: str, omnimatte_dir: Path, frames_dir: Path, ground_truth_dir: Path, object_names: list[str],
             masks_dir: Path | None = None) -> dict:
    """Compare a sample's omnimatte with its ground truth; with masks_dir, also score the mask-only baseline."""
    omnimatte_dir, ground_truth_dir = Path(omnimatte_dir), Path(ground_truth_dir)
    frames = read_frames(frames_dir)
    clean = read_frames(ground_truth_dir / "background")
    if len(clean) != len(frames):
        raise StageError(STAGE, sample, f"{len(clean)} ground-truth frames for {len(frames)} extracted frames",
                         "evaluate only samples whose frames are extracted whole (no start/end/stride) at the clip's size")
    metrics: dict = {
        "background_psnr": psnr(read_frames(omnimatte_dir / "background"), clean),
        "reconstruction_psnr": psnr(read_frames(omnimatte_dir / "reconstruction"), frames),
        "objects": {},
    }
    for name in object_names:
        layer_dir = omnimatte_dir / "layers" / name / "rgba"
        if len(list_frames(layer_dir)) != len(frames):
            raise StageError(STAGE, sample, f"layer '{name}' is missing or incomplete in {layer_dir}",
                             "rerun the train stage")
        alpha = read_frames(layer_dir, mode="rgba")[..., 3].astype(np.float64) / 255
        truth = read_frames(ground_truth_dir / "layers" / name / "rgba", mode="rgba")[..., 3].astype(np.float64) / 255
        effect = read_frames(ground_truth_dir / "effects" / name, mode="gray").astype(np.float64) / 255
        scores = {"soft_iou": soft_iou(alpha, truth), "effect_recall": effect_recall(alpha, effect),
                  "alpha_leak": alpha_leak(alpha, truth)}
        if masks_dir is not None:
            mask = read_frames(Path(masks_dir) / name, mode="gray").astype(np.float64) / 255
            scores["mask_baseline"] = {"soft_iou": soft_iou(mask, truth), "effect_recall": effect_recall(mask, effect),
                                       "alpha_leak": alpha_leak(mask, truth)}
        metrics["objects"][name] = scores
    return metrics


def run_evaluate(sample: str, omnimatte_dir: Path, frames_dir: Path, ground_truth_dir: Path, object_names: list[str],
                 out_path: Path, masks_dir: Path | None = None) -> dict:
    """Write metrics.json and log a one-line summary per object."""
    metrics = evaluate(sample, omnimatte_dir, frames_dir, ground_truth_dir, object_names, masks_dir)
    save_json(out_path, metrics)
    for name, scores in metrics["objects"].items():
        log.info("%s/%s: soft IoU %.3f, effect recall %.3f, alpha leak %.3f", sample, name, scores["soft_iou"],
                 scores["effect_recall"], scores["alpha_leak"])
    log.info("%s: background PSNR %.2f dB, reconstruction PSNR %.2f dB", sample, metrics["background_psnr"],
             metrics["reconstruction_psnr"])
    return metrics
