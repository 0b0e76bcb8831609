"""Training on a synthetic clip and scoring it against the clip's ground truth.

Shared by benchmarks/train_speed.py (speed and time-to-quality) and the test that
checks the demo's dog layer picks up its shadow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omnimatte.evaluate import alpha_leak, effect_recall, soft_iou
from omnimatte.flow import run_flow
from omnimatte.homography import run_homography
from omnimatte.io import write_frames
from omnimatte.synthetic import Clip, render_clip
from omnimatte.train import VideoTensors, load_video


def prepare_synthetic(work: Path, preset: str, n_frames: int, width: int, height: int, trimap_band: int,
                      device: torch.device, flow_weights: str = "DEFAULT", scale: float = 1.0
                      ) -> tuple[Clip, VideoTensors, dict]:
    """Render a clip, run the flow and homography stages on it, and load it for training.

    Returns the clip (with its ground truth), the training tensors and the flow stage's info.
    """
    clip = render_clip(preset, n_frames, width, height)
    write_frames(work / "frames", clip.frames)
    for name in clip.object_names:
        write_frames(work / "masks" / name, clip.masks[name])
    flow_info = run_flow(preset, work / "frames", work / "flow", work / "flow.mp4", weights=flow_weights,
                         device=str(device))
    run_homography(preset, work / "frames", work / "masks", work / "homography", work / "stabilised.mp4")
    video = load_video(preset, work / "frames", work / "flow", work / "homography", work / "masks",
                       clip.object_names, trimap_band, device, scale)
    return clip, video, flow_info


def far_leak(alpha: np.ndarray, truth: np.ndarray, distance: int = 6) -> float:
    """Alpha further than `distance` px from any true layer pixel, relative to the true layer's alpha.

    Unlike alpha_leak, this ignores the halo that the coarse mask's own dilation
    leaves around the object, and counts only alpha that landed elsewhere.
    """
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * distance + 1, 2 * distance + 1))
    near = np.stack([cv2.dilate((t > 0.02).astype(np.uint8), kernel) for t in truth]).astype(bool)
    total = truth.sum()
    return float(alpha[~near].sum() / total) if total > 0 else float("nan")


def score_alphas(alphas: np.ndarray, clip: Clip) -> dict[str, float]:
    """Per object: effect recall, alpha leak, far leak and soft IoU of rendered alphas (T, L, H, W) in [0, 1]."""
    scores: dict[str, float] = {}
    for i, name in enumerate(clip.object_names):
        alpha = alphas[:, i].astype(np.float64)
        truth = clip.layers[name][..., 3].astype(np.float64) / 255
        effect = clip.effects[name].astype(np.float64) / 255
        scores[f"{name}_effect_recall"] = round(effect_recall(alpha, effect), 4)
        scores[f"{name}_alpha_leak"] = round(alpha_leak(alpha, truth), 4)
        scores[f"{name}_far_leak"] = round(far_leak(alpha, truth), 4)
        scores[f"{name}_soft_iou"] = round(soft_iou(alpha, truth), 4)
    return scores
