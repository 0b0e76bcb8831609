"""The masks stage: one coarse mask per object and frame, from a user's mask folder or from SAM.

Omnimatte only needs rough masks: they tell each layer which object it owns, and
the training grows them into the object's shadows and reflections. Per object the
config gives either a folder of masks (SAM is skipped) or a prompt (box and/or
points) on one key frame. SAM segments the key frame; the mask is then carried to
every other frame by moving it with the optical flow and letting SAM snap it to the
object again, prompted with the box and interior points of the moved mask.

The SAM call is a parameter of the propagation (`Segmenter`), so the propagation
logic is testable without pretrained weights. The SAM weights themselves are loaded
by the real loading code only; a missing checkpoint is a `StageError` that says how
to get the weights or how to skip SAM, never a randomly initialised network.
"""

from __future__ import annotations

import math
import pickle
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from omnimatte.config_check import MASKS_OR_PROMPT
from omnimatte.contract import load_flow_field
from omnimatte.devices import resolve_device
from omnimatte.errors import StageError
from omnimatte.imaging import LABEL_PAD, draw_label, text_size
from omnimatte.io import (
    atomic_dir,
    atomic_path,
    list_frames,
    name_list,
    numbered_pngs,
    probe_video,
    read_frames,
    read_png,
    write_frames,
    write_video,
)
from omnimatte.logs import get_logger

STAGE = "masks"
log = get_logger(STAGE)

# The official checkpoints (https://github.com/facebookresearch/segment-anything#model-checkpoints).
SAM_URLS: dict[str, str] = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}
SAM_MODEL_TYPES = ("vit_h", "vit_l", "vit_b", "vit_tiny")
SPEC_KEYS = {"masks", "box", "points", "labels", "frame"}

# A segmenter prompts a segmentation model on one RGB frame with a box (x0, y0, x1, y1),
# points (N, 2) and their labels (N,) (1 = object, 0 = not), any of which may be None.
# It returns candidate masks (K, H, W) bool, the one it trusts most first; a single
# (H, W) mask is accepted as one candidate.
Segmenter = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None", "np.ndarray | None"], np.ndarray]

# Colours of the preview overlay, one per object in config order (RGB).
PALETTE: list[tuple[int, int, int]] = [
    (255, 70, 70), (60, 150, 255), (70, 220, 90), (255, 190, 0), (200, 90, 255), (0, 215, 215), (255, 120, 200),
]


@dataclass(frozen=True)
class Prompt:
    """An object's SAM prompt, already scaled to working-resolution pixels."""

    frame: int
    box: np.ndarray | None  # (4,) float32 x0, y0, x1, y1
    points: np.ndarray | None  # (N, 2) float32 x, y
    labels: np.ndarray | None  # (N,) int32


# --------------------------------------------------------------------------- SAM loading


def _build_sam_vit_tiny(checkpoint: str | None = None) -> Any:
    """A small SAM made of segment_anything's own modules, for tests and CPU smoke runs.

    Same prompt encoder, mask decoder and 1024-pixel input as the official models,
    only the image encoder is shrunk, so everything downstream runs the real code.
    """
    from segment_anything.build_sam import _build_sam

    return _build_sam(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
                      encoder_global_attn_indexes=[1], checkpoint=checkpoint)


def _sam_builder(model_type: str) -> Callable[..., Any]:
    from segment_anything import sam_model_registry

    if model_type == "vit_tiny":
        return _build_sam_vit_tiny
    if model_type not in sam_model_registry:
        raise ValueError(f"unknown SAM model type '{model_type}' (known: {', '.join(SAM_MODEL_TYPES)})")
    return sam_model_registry[model_type]


def load_sam(model_type: str, checkpoint: str | Path | None, device: str = "cpu") -> Any:
    """Build SAM `model_type` with segment_anything and load `checkpoint` into it, strictly.

    The state dict is read here (torch.load with map_location, weights only) rather
    than by segment_anything's builder so a checkpoint saved on a GPU also loads on a
    CPU machine; the architecture and load_state_dict are segment_anything's.
    Raises FileNotFoundError when there is no checkpoint: a SAM with random weights
    must never be used for real masks.
    """
    import torch

    builder = _sam_builder(model_type)
    if checkpoint is None or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"SAM checkpoint {checkpoint} does not exist")
    model = builder(checkpoint=None)
    state = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # training checkpoints wrap the weights
    model.load_state_dict(state)
    model.eval()
    return model.to(device)


def download_sam_weights(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download SAM weights from `url` to `dest` under a temporary name, renamed when complete.

    Used by the Snakemake download rule; offline it fails with a message that says
    where to put the file by hand.
    """
    dest = Path(dest)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
            expected = int(response.headers.get("Content-Length") or 0)
            written = 0
            with open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    written += len(chunk)
            if expected and written != expected:
                raise OSError(f"incomplete download: {written} of {expected} bytes")
            log.info("downloaded %s (%.1f MB) to %s", url, written / 1e6, dest)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise RuntimeError(
            f"could not download SAM weights from {url} to {dest}: {err}\n"
            f"  fix: on a machine with internet, download {url} and put the file at {dest} by hand "
            f"(e.g. curl -L -o {dest} {url}), or give the objects mask folders (`masks: path`) to skip SAM"
        ) from err


class SamSegmenter:
    """The `Segmenter` backed by SamPredictor; the image embedding is reused while the frame is the same.

    A box alone is unambiguous: SAM's single-mask answer. With points (a click is
    ambiguous; propagation always sends box and points) SAM's three multimask answers,
    best predicted score first, so the key frame takes the best score and propagation
    picks among the three by IoU. One decoder call per frame: on a CPU the decoder
    costs as much as the small encoder.
    """

    def __init__(self, model: Any) -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(model)
        self._image: np.ndarray | None = None
        self.encoder_seconds = 0.0
        self.encoded_frames = 0

    def _set_image(self, frame: np.ndarray) -> None:
        if self._image is not None and (self._image is frame or np.array_equal(self._image, frame)):
            return
        start = time.perf_counter()
        self.predictor.set_image(np.ascontiguousarray(frame), image_format="RGB")
        self.encoder_seconds += time.perf_counter() - start
        self.encoded_frames += 1
        self._image = frame

    def __call__(self, frame: np.ndarray, box: np.ndarray | None, points: np.ndarray | None,
                 labels: np.ndarray | None) -> np.ndarray:
        self._set_image(frame)
        prompt = {
            "box": None if box is None else np.asarray(box, np.float32),
            "point_coords": None if points is None else np.asarray(points, np.float32),
            "point_labels": None if labels is None else np.asarray(labels, np.int32),
        }
        masks, scores, _ = self.predictor.predict(**prompt, multimask_output=points is not None)
        return masks[np.argsort(-scores)].astype(bool)


# --------------------------------------------------------------------------- propagation


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


# --------------------------------------------------------------------------- config parsing


def _number_list(value: Any) -> list[float] | None:
    if not isinstance(value, (list, tuple)):
        return None
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if any(isinstance(v, bool) or not math.isfinite(n) for v, n in zip(value, numbers)):
        return None
    return numbers


def parse_prompt(sample: str, name: str, spec: dict, frames_info: dict, width: int, height: int, count: int) -> Prompt:
    """Check an object's prompt and scale it from source-video pixels to working pixels."""
    src_w = int(frames_info.get("source_width") or width)
    src_h = int(frames_info.get("source_height") or height)
    frame_size = f"source frame {src_w}x{src_h} (working {width}x{height})"
    fix_coords = (f"prompt coordinates are pixels of the source video: x in 0..{src_w}, y in 0..{src_h}; "
                  f"fix object '{name}' of sample '{sample}' in the config")

    key = spec.get("frame", 0)
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < count:
        raise StageError(STAGE, sample, f"object '{name}': key frame {key!r} is not a frame index (0..{count - 1})",
                         f"set `frame` to an integer from 0 to {count - 1}: an index into the extracted frames, "
                         "not the source video")
    scale = np.array([width / src_w, height / src_h], np.float32)

    box = None
    if spec.get("box") is not None:
        numbers = _number_list(spec["box"])
        if numbers is None or len(numbers) != 4 or numbers[0] >= numbers[2] or numbers[1] >= numbers[3]:
            raise StageError(STAGE, sample, f"object '{name}': box {spec['box']!r} is not [x0, y0, x1, y1] with x0 < x1, y0 < y1",
                             "give the box as four numbers [x0, y0, x1, y1] in source-video pixels")
        x0, y0, x1, y1 = numbers
        if min(x0, y0) < 0 or max(x0, x1) > src_w or max(y0, y1) > src_h:
            raise StageError(STAGE, sample, f"object '{name}': box {spec['box']} lies outside the {frame_size}", fix_coords)
        box = (np.array(numbers, np.float32).reshape(2, 2) * scale).reshape(4)

    points = labels = None
    if spec.get("points") is not None:
        raw = spec["points"]
        pairs = [_number_list(p) for p in raw] if isinstance(raw, (list, tuple)) else [None]
        if not pairs or any(p is None or len(p) != 2 for p in pairs):
            raise StageError(STAGE, sample, f"object '{name}': points {raw!r} are not a list of [x, y] pairs",
                             "give points as [[x, y], ...] in source-video pixels")
        for x, y in pairs:
            if not (0 <= x <= src_w and 0 <= y <= src_h):
                raise StageError(STAGE, sample, f"object '{name}': point [{x:g}, {y:g}] lies outside the {frame_size}", fix_coords)
        raw_labels = spec.get("labels", [1] * len(pairs))
        if (not isinstance(raw_labels, (list, tuple)) or len(raw_labels) != len(pairs)
                or any(label not in (0, 1) or isinstance(label, bool) for label in raw_labels)):
            raise StageError(STAGE, sample, f"object '{name}': labels {raw_labels!r} do not match the {len(pairs)} point(s)",
                             "give one label per point: 1 = on the object, 0 = not on it")
        if box is None and 1 not in raw_labels:
            raise StageError(STAGE, sample, f"object '{name}': all points are negative (label 0) and there is no box",
                             "add at least one point on the object (label 1) or a box")
        points = np.array(pairs, np.float32) * scale
        labels = np.array(raw_labels, np.int32)
    elif spec.get("labels") is not None:
        raise StageError(STAGE, sample, f"object '{name}': `labels` given without `points`", "add the points or drop the labels")

    if box is None and points is None:
        raise StageError(STAGE, sample, f"object '{name}' has neither a mask folder nor a prompt",
                         "give `masks: path/to/folder`, or a prompt: `box: [x0, y0, x1, y1]` and/or "
                         "`points: [[x, y], ...]` with `labels`, plus `frame: k` for the key frame")
    return Prompt(frame=key, box=box, points=points, labels=labels)


def prompt_problems(sample: str, objects: dict[str, dict], video: Path) -> list[str]:
    """Prompts that lie outside the source video's frame, found from its header before any job runs,
    so a typo in a box is not reported only after SAM's weights were downloaded and loaded."""
    try:
        probe = probe_video(Path(video))
    except ValueError:
        return []  # the frames stage says what is wrong with the video
    size = {"source_width": probe["width"], "source_height": probe["height"]}
    problems = []
    for name, spec in objects.items():
        if "masks" in spec:
            continue
        try:  # the key frame is checked by the masks stage, once the frames are counted
            parse_prompt(sample, name, {k: v for k, v in spec.items() if k != "frame"}, size, probe["width"],
                         probe["height"], 1)
        except StageError as err:
            problems.append(f"samples.{sample}.objects.{name}: {err.problem}; {err.fix}")
    return problems


def load_mask_folder(sample: str, name: str, folder: Path, frames_info: dict, width: int, height: int, count: int) -> np.ndarray:
    """Read a user's mask folder as (T, H, W) bool at the working frames.

    Files are ordered by the number in their names (`mask_2.png` before `mask_10.png`),
    so padding does not matter. Accepted: one PNG per extracted frame, or one per
    source frame (then the same frames are picked with start/stride). Any other count
    is refused, as is mixed or ambiguous naming: a stray file must not shift the
    masks against the frames. Masks at the source size are resized with nearest
    neighbour. Any 8-bit PNG (grey, RGB, palette): a pixel whose brightest channel is
    above 127 is object.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StageError(STAGE, sample, f"object '{name}': mask folder {folder} does not exist",
                         f"check the path given as `masks:` for object '{name}' (relative paths start at the working directory)")
    try:
        paths = [path for _, path in numbered_pngs(folder)]
    except ValueError as err:
        raise StageError(STAGE, sample, f"object '{name}': cannot tell the frame order of mask folder {folder}: {err}",
                         "name the masks with one pattern and one frame number each (e.g. 00000.png ... or mask_0.png "
                         "...), and move other files out of the folder") from err
    start, stride = int(frames_info.get("start") or 0), int(frames_info.get("stride") or 1)
    source_count = int(frames_info.get("source_count") or 0)
    if len(paths) == count:
        selected = paths
    elif source_count and len(paths) == source_count and start + (count - 1) * stride < len(paths):
        selected = [paths[start + i * stride] for i in range(count)]
        log.info("%s: object '%s': %d source-frame masks, taking frames %d, %d, ... (stride %d)",
                 sample, name, len(paths), start, start + stride, stride)
    else:
        expected = [count] + ([source_count] if source_count and source_count != count else [])
        nearest = min(expected, key=lambda n: abs(n - len(paths)))
        if len(paths) > nearest:
            offenders = f"; the {len(paths) - nearest} beyond {nearest}: {name_list([p.name for p in paths[nearest:]])}"
        else:
            offenders = f"; {nearest - len(paths)} fewer than {nearest}" + (f", the last is {paths[-1].name}" if paths else "")
        raise StageError(STAGE, sample,
                         f"object '{name}': mask folder {folder} holds {len(paths)} PNG file(s); expected {count} "
                         f"(one per extracted frame)" + (f" or {source_count} (one per source frame)" if len(expected) > 1 else "")
                         + offenders,
                         "give one mask per extracted frame or one per source-video frame, and move stray files out of the folder")
    src_size = (int(frames_info.get("source_height") or height), int(frames_info.get("source_width") or width))
    masks = np.zeros((count, height, width), bool)
    for i, path in enumerate(selected):
        try:
            image = read_png(path, "rgb").max(axis=2)
        except OSError as err:
            raise StageError(STAGE, sample, f"object '{name}': cannot read mask {path}",
                             "replace it with a readable PNG (8-bit grey or RGB, >127 = object)") from err
        if image.shape == src_size and src_size != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
        elif image.shape != (height, width):
            raise StageError(STAGE, sample,
                             f"object '{name}': mask {path} is {image.shape[1]}x{image.shape[0]}; expected the working "
                             f"size {width}x{height} or the source size {src_size[1]}x{src_size[0]}",
                             "export the masks at the source video's size (or the working size)")
        masks[i] = image > 127
    return masks


def _missing_checkpoint(sample: str, names: list[str], model_type: str, checkpoint: Path | None, url: str | None) -> StageError:
    where = str(checkpoint) if checkpoint is not None else "<the configured sam checkpoint path>"
    source = url or "the official checkpoints listed at https://github.com/facebookresearch/segment-anything#model-checkpoints"
    objects = ", ".join(f"'{n}'" for n in names)
    return StageError(
        STAGE, sample,
        f"object(s) {objects} need SAM ({model_type}) but its checkpoint {where} does not exist; "
        "a SAM without its trained weights would give meaningless masks, so none is used",
        f"either (1) download the official weights from {source} to {where}: `snakemake` does this with its "
        f"download rule when online, or by hand: curl -L -o {where} {url or '<url>'}; "
        f"or (2) give each such object a mask folder (`masks: path/to/folder` in the sample's object config) to skip SAM",
    )


# --------------------------------------------------------------------------- preview


def compose_preview(frame: np.ndarray, masks: Sequence[np.ndarray], names: Sequence[str], min_width: int = 320) -> np.ndarray:
    """One preview frame: each mask tinted in its colour, outlined and labelled with its name.

    Small frames are enlarged (nearest) so the labels stay legible.
    """
    scale = max(1, math.ceil(min_width / frame.shape[1]))
    size = (frame.shape[1] * scale, frame.shape[0] * scale)
    out = cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST).astype(np.float32)
    big_masks = [cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) for m in masks]
    for i, mask in enumerate(big_masks):
        colour = np.array(PALETTE[i % len(PALETTE)], np.float32)
        inside = mask.astype(bool)
        out[inside] = 0.55 * out[inside] + 0.45 * colour
    out = out.astype(np.uint8)
    font_scale = max(0.45, size[0] / 1000)
    thickness = max(1, round(font_scale * 2))
    for i, (mask, name) in enumerate(zip(big_masks, names)):
        colour = PALETTE[i % len(PALETTE)]
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, thickness + 1, cv2.LINE_AA)
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        # The name's box sits just above the mask, or just inside its top when there is no room above.
        text_w, text_h, base = text_size(name, font_scale, thickness)
        box_w, box_h = text_w + 2 * LABEL_PAD[0], text_h + base + 2 * LABEL_PAD[1]
        left = int(np.clip(xs.min(), 0, max(0, size[0] - box_w)))
        top = int(ys.min()) - 2 - box_h if ys.min() - 2 - box_h >= 0 else int(ys.min()) + 4
        top = min(top, size[1] - box_h)
        draw_label(out, name, (left + LABEL_PAD[0], top + LABEL_PAD[1] + text_h), font_scale, colour=(0, 0, 0),
                   thickness=thickness, box=colour)
    return out


# --------------------------------------------------------------------------- the stage


def run_masks(
    sample: str,
    frames_dir: Path,
    objects: dict[str, dict],
    out_dir: Path,
    preview_path: Path,
    frames_info: dict,
    forward_flow: Path | None = None,
    backward_flow: Path | None = None,
    sam_model_type: str = "vit_b",
    sam_checkpoint: Path | None = None,
    sam_url: str | None = None,
    device: str = "auto",
    fps: float = 24.0,
) -> None:
    """Write out_dir/{object}/00000.png ... (uint8 0/255) for every object, and the preview MP4.

    All specs are checked (and the SAM checkpoint found) before any work, so bad input
    fails in seconds. out_dir appears only when every object is done.
    """
    frame_paths = list_frames(frames_dir)
    if not frame_paths:
        raise StageError(STAGE, sample, f"no PNG frames in {frames_dir}", "run the frames stage first (or check its log)")
    frames = read_frames(frames_dir)
    count, height, width = frames.shape[:3]
    if frames_info.get("count") not in (None, count):
        raise StageError(STAGE, sample, f"{frames_dir} holds {count} frames but the frames info says {frames_info['count']}",
                         "the frames folder and its info are out of step: rerun the frames stage")
    if not objects:
        raise StageError(STAGE, sample, "no objects are configured", "list at least one object (with a prompt or `masks:`) for the sample")

    user_masks: dict[str, Path] = {}
    prompts: dict[str, Prompt] = {}
    for name, spec in objects.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise StageError(STAGE, sample, f"object name {name!r} cannot be a folder name", "use a plain name such as 'person'")
        if not isinstance(spec, dict):
            raise StageError(STAGE, sample, f"object '{name}': expected settings (a mapping), got {spec!r}",
                             "give the object `masks: path/to/folder` or a prompt (`box`, `points`, `labels`, `frame`)")
        if not set(spec) <= SPEC_KEYS:
            raise StageError(STAGE, sample, f"object '{name}': unknown settings {sorted(set(spec) - SPEC_KEYS)}",
                             f"an object takes only {', '.join(sorted(SPEC_KEYS))}")
        if spec.get("masks") is not None:
            if not isinstance(spec["masks"], (str, Path)) or not str(spec["masks"]).strip():
                raise StageError(STAGE, sample, f"object '{name}': `masks` is {spec['masks']!r}, not a folder path",
                                 "set `masks:` to the folder that holds the object's PNG masks")
            if set(spec) & {"box", "points"}:
                raise StageError(STAGE, sample, f"object '{name}' has a mask folder and a prompt", MASKS_OR_PROMPT)
            user_masks[name] = Path(spec["masks"])
        else:
            prompts[name] = parse_prompt(sample, name, spec, frames_info, width, height, count)

    segmenter: SamSegmenter | None = None
    flows: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if prompts:
        if sam_model_type not in SAM_MODEL_TYPES:
            raise StageError(STAGE, sample, f"unknown SAM model type '{sam_model_type}'", f"use one of {', '.join(SAM_MODEL_TYPES)}")
        url = sam_url or SAM_URLS.get(sam_model_type)
        if sam_checkpoint is None or not Path(sam_checkpoint).is_file():
            raise _missing_checkpoint(sample, list(prompts), sam_model_type, sam_checkpoint, url)
        flows = tuple(None if path is None else load_flow_field(STAGE, sample, path, count, height, width, mmap=True)
                      for path in (forward_flow, backward_flow))
        if flows[0] is None or flows[1] is None:
            log.warning("%s: no forward/backward flow given; masks are carried between frames without motion", sample)
        run_device = resolve_device(STAGE, sample, device)
        start = time.perf_counter()
        try:
            model = load_sam(sam_model_type, sam_checkpoint, run_device)
        except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
            raise StageError(STAGE, sample, f"cannot load SAM checkpoint {sam_checkpoint} as '{sam_model_type}': {str(err)[:300]}",
                             f"the file is incomplete or for another model type: re-download it from {url} "
                             "or set the SAM model type that matches it") from err
        log.info("%s: SAM %s loaded from %s on %s in %.1f s", sample, sam_model_type, sam_checkpoint, run_device,
                 time.perf_counter() - start)
        segmenter = SamSegmenter(model)

    results: dict[str, np.ndarray] = {}
    for name in objects:
        if name in user_masks:
            results[name] = load_mask_folder(sample, name, user_masks[name], frames_info, width, height, count)
            log.info("%s: object '%s': %d masks from %s", sample, name, count, user_masks[name])
        else:
            assert segmenter is not None
            prompt = prompts[name]
            try:
                results[name], kept = propagate_masks(frames, prompt, segmenter, *flows, name=name, progress=True)
            except ValueError as err:
                raise StageError(STAGE, sample, f"object '{name}': SAM finds nothing at the prompt on frame {prompt.frame}",
                                 "check the prompt (source-video pixels, on the object) or give a mask folder (`masks:`)") from err
            if kept:
                log.warning("%s: object '%s': SAM gave no mask near the flow-warped one on %d frame(s) %s; kept the warped mask",
                            sample, name, len(kept), kept[:20])
            log.info("%s: object '%s': SAM from key frame %d", sample, name, prompt.frame)
        empty = [i for i, m in enumerate(results[name]) if not m.any()]
        if empty:
            log.warning("%s: object '%s' has an empty mask on %d of %d frames (first %d)", sample, name, len(empty), count, empty[0])
        log.info("%s: object '%s' covers %.1f%% of the frame on average", sample, name, 100 * results[name].mean())
    if segmenter is not None and segmenter.encoded_frames:
        log.info("%s: SAM image encoder: %d frames, %.2f s per frame", sample, segmenter.encoded_frames,
                 segmenter.encoder_seconds / segmenter.encoded_frames)

    names = list(objects)
    with atomic_dir(out_dir) as tmp:
        for name in names:
            write_frames(tmp / name, (m.astype(np.uint8) * 255 for m in results[name]))
        write_video(preview_path, (compose_preview(frames[t], [results[n][t] for n in names], names) for t in range(count)), fps)
    log.info("%s: masks for %d object(s) x %d frames written to %s", sample, len(names), count, out_dir)
