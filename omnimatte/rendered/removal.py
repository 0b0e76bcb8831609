"""Removal PSNR: how well the layers remove one object with everything it does, scored against the render
of the scene without that object (gt/without/{object}/), and its two baselines.

- removal: the background layer with every other object's layer over it, back to front, as the `remove`
  edit makes it;
- mask-only: the frame with the object's coarse mask filled from the registered median of the frames
  (what a segmenter and a clean plate give: the object goes, its shadow and reflection stay);
- registered median: the registered median with the other objects' coarse masks cut from the frame over it
  (the mask-only layers over the median plate: the effects of every object go, the others' too).

All are 8-bit frames compared as the evaluate stage's PSNRs; each object's figure is over the whole clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnimatte.camera import registered_median, view_canvas
from omnimatte.contract import HomographyFiles, OmnimatteFiles, load_camera
from omnimatte.imaging import over, premultiply, psnr
from omnimatte.io import read_frames

STAGE = "evaluate"


def remove_layer(background: np.ndarray, layers: dict[str, np.ndarray], order: list[str], removed: str) -> np.ndarray:
    """Background (T, H, W, 3) uint8 with every straight-alpha RGBA layer (T, H, W, 4) uint8 but `removed`
    composited over it in `order` (back to front), as uint8."""
    image = background.astype(np.float32) / 255.0
    for name in order:
        if name != removed:
            image = over(image, premultiply(layers[name]))
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def filled(base: np.ndarray, masks: list[np.ndarray], source: np.ndarray) -> np.ndarray:
    """`base` (T, H, W, 3) with the union of `masks` (uint8 0/255) taken from `source`."""
    union = np.zeros(base.shape[:3], bool)
    for mask in masks:
        union |= mask > 127
    return np.where(union[..., None], source, base)


def registered_median_background(sample: str, frames: np.ndarray, homography_dir: Path) -> np.ndarray:
    """The registered-median baseline's background of every frame, as the evaluate stage makes it."""
    camera = load_camera(STAGE, sample, HomographyFiles(Path(homography_dir)), len(frames))
    plate = registered_median(frames, camera.homographies, camera.canvas_size)
    return view_canvas(plate, camera.homographies, frames.shape[1], frames.shape[2])


def removal_scores(background: np.ndarray, layers: dict[str, np.ndarray], order: list[str],
                   without: dict[str, np.ndarray], frames: np.ndarray, masks: dict[str, np.ndarray],
                   median: np.ndarray | None) -> dict:
    """Per object: removal PSNR of the layers and, with `median`, of both baselines; their means in "summary"."""
    objects = {}
    for name in order:
        scores = {"removal_psnr": psnr(remove_layer(background, layers, order, name), without[name])}
        if median is not None:
            others = [masks[other] for other in order if other != name]
            scores["mask_removal_psnr"] = psnr(filled(frames, [masks[name]], median), without[name])
            scores["median_removal_psnr"] = psnr(filled(median, others, frames), without[name])
        objects[name] = scores
    keys = sorted({key for scores in objects.values() for key in scores})
    return {"objects": objects, "summary": {key: float(np.mean([s[key] for s in objects.values()])) for key in keys}}


def evaluate_removal(sample: str, omnimatte_dir: Path, frames_dir: Path, clip_dir: Path, order: list[str],
                     masks_dir: Path, homography_dir: Path) -> dict:
    """removal_scores of a sample's written omnimatte against its rendered clip's gt/without/."""
    files = OmnimatteFiles(Path(omnimatte_dir))
    frames = read_frames(frames_dir)
    layers = {name: read_frames(files.layer(name), mode="rgba") for name in order}
    without = {name: read_frames(Path(clip_dir) / "gt" / "without" / name) for name in order}
    masks = {name: read_frames(Path(masks_dir) / name, mode="gray") for name in order}
    median = registered_median_background(sample, frames, homography_dir)
    return removal_scores(read_frames(files.background), layers, order, without, frames, masks, median)
