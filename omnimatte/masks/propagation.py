"""Carrying an object's mask through the video: SAM on the key frame, then the mask moved by the optical flow
to each next frame and snapped to the object again by SAM, prompted with the moved mask's box and interior points.

The SAM call is a parameter (`Segmenter`), so the propagation is testable without pretrained weights.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from tqdm import tqdm

from omnimatte.logs import get_logger
from omnimatte.masks.prompts import Prompt

log = get_logger("masks")

# A segmenter prompts a segmentation model on one RGB frame with a box (x0, y0, x1, y1),
# points (N, 2) and their labels (N,) (1 = object, 0 = not), any of which may be None.
# It returns candidate masks (K, H, W) bool, the one it trusts most first; a single
# (H, W) mask is accepted as one candidate.
Segmenter = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None", "np.ndarray | None"], np.ndarray]


def warp_mask(mask: np.ndarray, flow: np.ndarray | None) -> np.ndarray:
    """Move a mask along a flow defined on its own frame (forward splatting).

    Each object pixel is splatted bilinearly to where the flow sends it; a target
    pixel is kept when it gathers at least half a pixel's weight, and a 3x3 closing
    fills the pinholes that stretching flow leaves.
    """
    if flow is None:
        return mask.copy()
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return np.zeros_like(mask, dtype=bool)
    motion = np.asarray(flow[ys, xs], np.float32)
    tx, ty = xs + motion[:, 0], ys + motion[:, 1]
    x0, y0 = np.floor(tx).astype(np.int64), np.floor(ty).astype(np.int64)
    fx, fy = tx - x0, ty - y0
    weight = np.zeros(height * width, np.float32)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        x, y = x0 + dx, y0 + dy
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        weight += np.bincount(y[inside] * width + x[inside], weights=w[inside], minlength=height * width).astype(np.float32)
    moved = (weight.reshape(height, width) >= 0.5).astype(np.uint8)
    moved = cv2.morphologyEx(moved, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return moved.astype(bool)


def mask_box(mask: np.ndarray, margin: float = 0.1, min_margin: int = 3) -> np.ndarray | None:
    """The mask's bounding box (x0, y0, x1, y1) grown by `margin` of its size (at least
    `min_margin` px) and clipped to the frame, so SAM sees the object's moved edges too."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    height, width = mask.shape
    pad_x = max(min_margin, margin * (xs.max() - xs.min() + 1))
    pad_y = max(min_margin, margin * (ys.max() - ys.min() + 1))
    return np.array([max(0, xs.min() - pad_x), max(0, ys.min() - pad_y),
                     min(width - 1, xs.max() + pad_x), min(height - 1, ys.max() + pad_y)], np.float32)


def interior_points(mask: np.ndarray, count: int = 3) -> np.ndarray:
    """Up to `count` points deep inside the mask and spread apart (x, y), as positive clicks.

    The deepest point first, then greedily the point farthest from those chosen among
    pixels at least half as deep, so clicks do not land on the uncertain edge.
    """
    depth = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    if depth.max() <= 0:
        return np.zeros((0, 2), np.float32)
    ys, xs = np.nonzero(depth >= 0.5 * depth.max())
    pool = np.stack([xs, ys], axis=1).astype(np.float32)
    chosen = [pool[np.argmax(depth[ys, xs])]]
    nearest = np.linalg.norm(pool - chosen[0], axis=1)
    while len(chosen) < count and nearest.max() > 1.0:
        chosen.append(pool[np.argmax(nearest)])
        nearest = np.minimum(nearest, np.linalg.norm(pool - chosen[-1], axis=1))
    return np.stack(chosen)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _candidates(result: np.ndarray) -> np.ndarray:
    result = np.asarray(result).astype(bool)
    return result[None] if result.ndim == 2 else result


def propagate_masks(
    frames: np.ndarray,
    prompt: Prompt,
    segmenter: Segmenter,
    forward_flow: np.ndarray | None = None,
    backward_flow: np.ndarray | None = None,
    min_iou: float = 0.25,
    name: str = "object",
    progress: bool = False,
) -> tuple[np.ndarray, list[int]]:
    """Segment the prompt on its key frame, then carry the mask forward to the end and back to 0.

    frames: (T, H, W, 3) uint8. forward_flow[t] moves frame t to t+1, backward_flow[t]
    moves t+1 to t ((T-1, H, W, 2) pixels, dx, dy); None means no motion. On each new
    frame the previous mask is warped by the flow, SAM is prompted with the warped
    mask's box and interior points, and the candidate that agrees best (IoU) with the
    warped mask wins. When SAM returns nothing, or nothing close to the warped mask
    (IoU < min_iou, SAM grabbed something else), the warped mask is kept. SAM's
    mask_input (the previous low-res logits) is not sent: those logits sit where the
    object was on the previous frame, and the warped mask already carries them over.

    Returns the masks (T, H, W) bool and the frames where the warped mask was kept.
    Raises ValueError when the key frame's prompt gives an empty mask.
    """
    count = len(frames)
    masks = np.zeros(frames.shape[:3], bool)
    key_mask = _candidates(segmenter(frames[prompt.frame], prompt.box, prompt.points, prompt.labels))[0]
    if not key_mask.any():
        raise ValueError(f"the prompt gives an empty mask on key frame {prompt.frame}")
    masks[prompt.frame] = key_mask
    kept_warped: list[int] = []
    steps = [(t, t - 1, None if forward_flow is None else forward_flow[t - 1]) for t in range(prompt.frame + 1, count)]
    steps += [(t, t + 1, None if backward_flow is None else backward_flow[t]) for t in range(prompt.frame - 1, -1, -1)]
    for t, previous, flow in tqdm(steps, desc=f"masks: {name}", unit="frame", disable=not progress):
        warped = warp_mask(masks[previous], None if flow is None else np.asarray(flow, np.float32))
        if not warped.any():
            log.debug("%s: frame %d: the mask left the frame", name, t)
            continue
        points = interior_points(warped)
        candidates = _candidates(segmenter(frames[t], mask_box(warped), points, np.ones(len(points), np.int32)))
        ious = [mask_iou(c, warped) for c in candidates]
        best = int(np.argmax(ious))
        if not candidates[best].any() or ious[best] < min_iou:
            log.debug("%s: frame %d: SAM gave no mask near the warped one (IoU %.2f); keeping the warped mask",
                      name, t, ious[best])
            masks[t] = warped
            kept_warped.append(t)
        else:
            masks[t] = candidates[best]
    return masks, sorted(kept_warped)
