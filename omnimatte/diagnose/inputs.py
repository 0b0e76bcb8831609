"""What the diagnose stage reads of a sample: the frames, masks, flow and camera, and the trained layers.

Everything is read through the output contract's loaders, so a missing or stale file stops the
stage with a message naming the file and the stage to rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnimatte.background_fit import FlowFields
from omnimatte.camera import Camera
from omnimatte.contract import FlowFiles, HomographyFiles, OmnimatteFiles, load_array, load_camera, load_json_file
from omnimatte.errors import StageError
from omnimatte.io import list_frames, read_frames

STAGE = "diagnose"


@dataclass
class Layers:
    """A training's layers: per object (T, H, W, 4) uint8 straight-alpha RGBA, back to front, the background
    (T, H, W, 3) and the reconstruction (T, H, W, 3)."""

    rgba: dict[str, np.ndarray]
    background: np.ndarray
    reconstruction: np.ndarray

    def alpha(self, name: str) -> np.ndarray:
        """Object `name`'s alpha (T, H, W) float32 in [0, 1]."""
        return self.rgba[name][..., 3].astype(np.float32) / 255.0


@dataclass
class SampleInputs:
    """A sample as the checks see it: frames (T, H, W, 3) uint8, per object its coarse mask (T, H, W) bool (back to
    front), the camera, the flow (None: not given), the layers of one or two trainings (None: not given) and, from
    the homography stage's canvas.json, the frames it placed by a neighbour's motion, the pairs (t for t->t+1) it
    registered by dense alignment alone, how well each such placement aligns its frame onto the one before (None:
    cannot be told) and the median of the same over the registered pairs (None: not measured)."""

    sample: str
    frames: np.ndarray
    masks: dict[str, np.ndarray]
    camera: Camera
    flow: FlowFields | None
    layers: Layers | None = None
    second_layers: Layers | None = None
    fallback_frames: tuple[int, ...] = ()
    dense_pairs: tuple[int, ...] = ()
    fallback_correlation: tuple[float | None, ...] = ()
    registered_correlation: float | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def shape(self) -> tuple[int, int]:
        return self.frames.shape[1], self.frames.shape[2]


def _read_folder(sample: str, folder: Path, mode: str, count: int, shape: tuple[int, int], what: str,
                 maker: str, stage: str = STAGE) -> np.ndarray:
    if len(list_frames(folder)) != count:
        raise StageError(stage, sample, f"{what} in {folder}: {len(list_frames(folder))} images for {count} frames",
                         f"rerun the {maker} stage (snakemake --forcerun {maker})")
    images = read_frames(folder, mode)
    if images.shape[1:3] != shape:
        raise StageError(stage, sample, f"{what} in {folder} are {images.shape[2]}x{images.shape[1]}, the frames "
                         f"{shape[1]}x{shape[0]}", f"rerun the {maker} stage (snakemake --forcerun {maker})")
    return images


def read_layers(sample: str, folder: Path, object_names: list[str], count: int, shape: tuple[int, int]) -> Layers:
    """A training's layers from its omnimatte folder, checked against the frames' count and size."""
    files = OmnimatteFiles(Path(folder))
    rgba = {name: _read_folder(sample, files.layer(name), "rgba", count, shape, f"layer '{name}'", "train")
            for name in object_names}
    return Layers(rgba, _read_folder(sample, files.background, "rgb", count, shape, "background frames", "train"),
                  _read_folder(sample, files.reconstruction, "rgb", count, shape, "reconstruction frames", "train"))


def read_sample(sample: str, frames_dir: Path, masks_dir: Path, object_names: list[str], homography_dir: Path,
                flow_dir: Path | None = None, omnimatte_dir: Path | None = None,
                second_omnimatte_dir: Path | None = None, stage: str = STAGE) -> SampleInputs:
    """Read a sample's stage outputs, for `stage`; the flow and the layers only when their folders are given."""
    frames_dir = Path(frames_dir)
    if not list_frames(frames_dir):
        raise StageError(stage, sample, f"no PNG frames in {frames_dir}", "run the frames stage first")
    frames = read_frames(frames_dir, "rgb")
    count, shape = len(frames), frames.shape[1:3]
    masks = {name: _read_folder(sample, Path(masks_dir) / name, "gray", count, shape, f"masks of '{name}'", "masks",
                                stage) > 127 for name in object_names}
    homography = HomographyFiles(Path(homography_dir))
    canvas = load_json_file(stage, sample, homography.canvas, "homography")
    camera = load_camera(stage, sample, homography, count, canvas)
    flow = None
    if flow_dir is not None:
        files = FlowFiles(Path(flow_dir))
        pairs = (count - 1, *shape)
        flow = FlowFields(load_array(stage, sample, files.forward, (*pairs, 2), "flow"),
                          load_array(stage, sample, files.backward, (*pairs, 2), "flow"),
                          load_array(stage, sample, files.confidence_forward, pairs, "flow"),
                          load_array(stage, sample, files.confidence_backward, pairs, "flow"))
    layers = read_layers(sample, omnimatte_dir, object_names, count, shape) if omnimatte_dir is not None else None
    second = (read_layers(sample, second_omnimatte_dir, object_names, count, shape)
              if second_omnimatte_dir is not None else None)
    fallback_frames = tuple(int(t) for t in canvas.get("fallback_frames", []))
    fallback_correlation = tuple(None if value is None else float(value)
                                 for value in canvas.get("fallback_correlation", [None] * len(fallback_frames)))
    if len(fallback_correlation) != len(fallback_frames):
        raise StageError(stage, sample, f"{homography.canvas} gives {len(fallback_correlation)} fallback_correlation "
                         f"values for {len(fallback_frames)} fallback_frames",
                         "rerun the homography stage (snakemake --forcerun homography)")
    registered = canvas.get("registered_correlation")
    return SampleInputs(sample, frames, masks, camera, flow, layers, second, fallback_frames,
                        tuple(int(t) for t in canvas.get("dense_pairs", [])), fallback_correlation,
                        None if registered is None else float(registered))
