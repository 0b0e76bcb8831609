"""Scores omnimattes against ground-truth layers (the synthetic clips carry them).

Per object: soft IoU of the alphas, the share of the effect (e.g. the shadow) that
the layer captured, and the alpha that leaked outside the true layer; for the
whole clip: background and reconstruction PSNR. Two baselines in the same terms:
the coarse mask taken as the layer, and a background made from the per-pixel
median of the frames registered into the canvas by the pipeline's homographies.

Where objects overlap, what a back layer holds behind a front object never reaches
the frame, so no method can be judged there: every per-object score weighs each
pixel by how much of that object shows, the product of (1 - true alpha) of the
layers in front of it (1 everywhere for a lone object).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from omnimatte.camera import registered_median, view_canvas
from omnimatte.contract import HomographyFiles, OmnimatteFiles, load_camera
from omnimatte.errors import StageError
from omnimatte.imaging import label, over_checkerboard, psnr, tile, to_uint8
from omnimatte.io import list_frames, load_json, read_frames, save_json, write_png
from omnimatte.logs import get_logger

STAGE = "evaluate"
log = get_logger(STAGE)

LAYER_SCORES = ("soft_iou", "effect_recall", "alpha_leak")
SHEET_FRAMES = 3
SHEET_MAX_WIDTH = 320  # panels wider than this are halved in the contact sheet


def soft_iou(alpha: np.ndarray, truth: np.ndarray, weight: np.ndarray | float = 1.0) -> float:
    """Sum of minima over sum of maxima: 1 for identical mattes, 0 for disjoint ones."""
    union = (weight * np.maximum(alpha, truth)).sum()
    return float((weight * np.minimum(alpha, truth)).sum() / union) if union > 0 else 1.0


def effect_recall(alpha: np.ndarray, effect: np.ndarray, weight: np.ndarray | float = 1.0) -> float:
    """The share of the effect's alpha (where the object itself is absent) that the layer holds."""
    total = (weight * effect).sum()
    return float((weight * np.minimum(alpha, effect)).sum() / total) if total > 0 else float("nan")


def alpha_leak(alpha: np.ndarray, truth: np.ndarray, weight: np.ndarray | float = 1.0) -> float:
    """Alpha beyond the true layer's, relative to the true layer's total alpha."""
    total = (weight * truth).sum()
    return float((weight * np.clip(alpha - truth, 0, None)).sum() / total) if total > 0 else float("nan")


def visibility(true_alphas: list[np.ndarray]) -> list[np.ndarray]:
    """For true layer alphas listed back to front, how much of each shows: the product
    of (1 - alpha) over the layers in front of it."""
    shown = [np.ones_like(true_alphas[-1])]
    for alpha in reversed(true_alphas[1:]):
        shown.append(shown[-1] * (1.0 - alpha))
    return shown[::-1]


def layer_scores(alpha: np.ndarray, truth: np.ndarray, effect: np.ndarray, weight: np.ndarray | float = 1.0
                 ) -> dict[str, float | None]:
    """Soft IoU, effect recall and alpha leak of one layer's alphas; None where undefined (no effect)."""
    scores = {"soft_iou": soft_iou(alpha, truth, weight), "effect_recall": effect_recall(alpha, effect, weight),
              "alpha_leak": alpha_leak(alpha, truth, weight)}
    return {k: None if math.isnan(v) else v for k, v in scores.items()}


def error_map(frame: np.ndarray, alpha: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The dimmed frame with alpha the layer has beyond the truth in red and alpha it misses in green."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) * 0.35
    image = np.repeat(grey[..., None], 3, axis=2)
    image[..., 0] += 255 * np.clip(alpha - truth, 0, 1)
    image[..., 1] += 255 * np.clip(truth - alpha, 0, 1)
    return np.clip(image, 0, 255).astype(np.uint8)


def contact_sheet(frames: np.ndarray, background: np.ndarray, clean: np.ndarray, median: np.ndarray | None,
                  layers: dict[str, np.ndarray], truths: dict[str, np.ndarray], effects: dict[str, np.ndarray]
                  ) -> np.ndarray:
    """A few frames, each as a block of rows: input | background | median baseline | clean plate, then per object
    layer over checkerboard | its alpha | true alpha with the effect tinted blue | error map."""
    half = frames.shape[2] > SHEET_MAX_WIDTH

    def panel(image: np.ndarray, text: str) -> np.ndarray:
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if half:
            image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return label(image, text)

    panels = []
    for t in np.linspace(0, len(frames) - 1, SHEET_FRAMES + 2)[1:-1].round().astype(int):
        panels += [panel(frames[t], f"input {t}"), panel(background[t], "background"),
                   panel(median[t] if median is not None else np.zeros_like(frames[t]), "median baseline"),
                   panel(clean[t], "clean plate")]
        for name, rgba in layers.items():
            share = np.clip(effects[name][t] / np.maximum(truths[name][t], 1e-6), 0, 1)  # of the alpha, the effect's
            tint = np.stack([1 - 0.7 * share, 1 - 0.7 * share, np.ones_like(share)], -1)
            truth = to_uint8(truths[name][t][..., None] * tint, half_even=True)
            alpha = rgba[t][..., 3].astype(np.float32) / 255
            panels += [panel(over_checkerboard(rgba[t]), f"layer: {name}"), panel(rgba[t][..., 3], "alpha"),
                       panel(truth, "true alpha (effect blue)"),
                       panel(error_map(frames[t], alpha, truths[name][t]), "red: extra, green: missed")]
    return tile(panels, 4)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def evaluate(sample: str, omnimatte_dir: Path, frames_dir: Path, ground_truth_dir: Path, object_names: list[str],
             masks_dir: Path | None = None, homography_dir: Path | None = None, sheet_path: Path | None = None) -> dict:
    """Compare a sample's omnimatte with its ground truth.

    With masks_dir, also score the mask-only baseline; with homography_dir, the median
    background baseline; with sheet_path, draw the contact sheet there.
    """
    omnimatte, ground_truth_dir = OmnimatteFiles(Path(omnimatte_dir)), Path(ground_truth_dir)
    frames = read_frames(frames_dir)
    clean = read_frames(ground_truth_dir / "background")
    if len(clean) != len(frames) or clean.shape[1:3] != frames.shape[1:3]:
        raise StageError(STAGE, sample, f"{len(clean)} ground-truth frames of {clean.shape[2]}x{clean.shape[1]} for "
                         f"{len(frames)} extracted frames of {frames.shape[2]}x{frames.shape[1]}",
                         "evaluate only samples whose frames are extracted whole (no start/end/stride) at the clip's size")
    info_path = ground_truth_dir / "info.json"
    order = load_json(info_path)["objects"] if info_path.is_file() else list(object_names)
    unknown = [name for name in object_names if name not in order]
    if unknown:
        raise StageError(STAGE, sample, f"object(s) {unknown} have no ground truth in {ground_truth_dir} (it has {order})",
                         "name the sample's objects as the synthetic clip does")

    def read_alpha(folder: Path) -> np.ndarray:
        return read_frames(folder, mode="rgba")[..., 3].astype(np.float64) / 255

    truths = {name: read_alpha(ground_truth_dir / "layers" / name / "rgba") for name in order}
    shown = dict(zip(order, visibility([truths[name] for name in order])))
    background = read_frames(omnimatte.background)
    metrics: dict = {
        "background_psnr": psnr(background, clean),
        "reconstruction_psnr": psnr(read_frames(omnimatte.reconstruction), frames),
        "objects": {},
    }
    layers, effects = {}, {}
    for name in object_names:
        layer_dir = omnimatte.layer(name)
        if len(list_frames(layer_dir)) != len(frames):
            raise StageError(STAGE, sample, f"layer '{name}' is missing or incomplete in {layer_dir}",
                             "rerun the render stage (snakemake --forcerun render)")
        layers[name] = read_frames(layer_dir, mode="rgba")
        alpha = layers[name][..., 3].astype(np.float64) / 255
        effects[name] = read_frames(ground_truth_dir / "effects" / name, mode="gray").astype(np.float64) / 255
        scores = layer_scores(alpha, truths[name], effects[name], shown[name])
        if masks_dir is not None:
            mask = read_frames(Path(masks_dir) / name, mode="gray").astype(np.float64) / 255
            scores["mask_baseline"] = layer_scores(mask, truths[name], effects[name], shown[name])
        metrics["objects"][name] = scores

    median = None
    if homography_dir is not None:
        camera = load_camera(STAGE, sample, HomographyFiles(Path(homography_dir)), len(frames))
        plate = registered_median(frames, camera.homographies, camera.canvas_size)
        median = view_canvas(plate, camera.homographies, frames.shape[1], frames.shape[2])
        metrics["median_baseline"] = {"background_psnr": psnr(median, clean)}

    scored = metrics["objects"].values()
    summary = {key: _mean([s[key] for s in scored]) for key in LAYER_SCORES}
    if masks_dir is not None:
        summary.update({f"mask_{key}": _mean([s["mask_baseline"][key] for s in scored]) for key in LAYER_SCORES})
    summary["background_psnr"] = metrics["background_psnr"]
    if median is not None:
        summary["median_background_psnr"] = metrics["median_baseline"]["background_psnr"]
    summary["reconstruction_psnr"] = metrics["reconstruction_psnr"]
    metrics["summary"] = summary
    metrics["weighting"] = "per-object scores weigh each pixel by the share of the object that shows (layers in front)"

    if sheet_path is not None:
        write_png(sheet_path, contact_sheet(frames, background, clean, median, layers,
                                            {n: truths[n] for n in object_names}, effects))
    return metrics


def run_evaluate(sample: str, omnimatte_dir: Path, frames_dir: Path, ground_truth_dir: Path, object_names: list[str],
                 out_path: Path, masks_dir: Path | None = None, homography_dir: Path | None = None,
                 sheet_path: Path | None = None) -> dict:
    """Write metrics.json (and the contact sheet) and log a one-line summary per object."""
    metrics = evaluate(sample, omnimatte_dir, frames_dir, ground_truth_dir, object_names, masks_dir, homography_dir,
                       sheet_path)
    save_json(out_path, metrics)

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for name, scores in metrics["objects"].items():
        log.info("%s/%s: soft IoU %s, effect recall %s, alpha leak %s", sample, name, fmt(scores["soft_iou"]),
                 fmt(scores["effect_recall"]), fmt(scores["alpha_leak"]))
    median = metrics.get("median_baseline", {}).get("background_psnr")
    log.info("%s: background PSNR %.2f dB (median baseline %s dB), reconstruction PSNR %.2f dB", sample,
             metrics["background_psnr"], "n/a" if median is None else f"{median:.2f}", metrics["reconstruction_psnr"])
    return metrics
