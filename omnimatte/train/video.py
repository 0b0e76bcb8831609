"""Everything training needs about one video, read from the upstream stages, checked, and put on the device."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from omnimatte import losses
from omnimatte.background_fit import (
    BackgroundFit,
    BackgroundFitSettings,
    FlowFields,
    fit_background,
    fit_gains,
    reach_zone,
)
from omnimatte.background_fit_stage import load_background_fit, moving_and_misfit_shares, unexplained_maps
from omnimatte.camera import Camera, camera_flow, first_reached, homography_grid, registered_median
from omnimatte.contract import FlowFiles, HomographyFiles, load_array, load_camera, load_flow
from omnimatte.errors import StageError
from omnimatte.imaging.luma_chroma import chroma_at_half_resolution
from omnimatte.io import list_frames, read_frames
from omnimatte.logs import get_logger
from omnimatte.model.compositing import box_filter
from omnimatte.render.effect_claim import UnexplainedBackground

STAGE = "train"
log = get_logger(STAGE)


@dataclass(kw_only=True)
class VideoTensors:
    """One video as tensors on one device.

    The network works at (h, w) = the training scale times the working resolution
    (H, W); the frames and canvas grid at (H, W) are kept for rendering the output.
    """

    frames: torch.Tensor  # (T, 3, h, w) in [-1, 1]
    masks: torch.Tensor  # (T, L, 1, h, w) binary
    trimaps: torch.Tensor  # (T, L, 1, h, w) in {-1, 0, 1}
    flow: torch.Tensor  # (T, 2, h, w) forward flow in training pixels; the last frame's from the backward flow
    confidence: torch.Tensor  # (T, 1, h, w); zero for the last frame
    background_grid: torch.Tensor  # (T, h, w, 2) frame pixel -> canvas, in [-1, 1]
    background_flow: torch.Tensor  # (T, 2, h, w) camera flow t -> t+1
    canvas_size: tuple[int, int]  # the background canvas at the training scale
    plate: torch.Tensor | None  # (1, 3, Hc, Wc) in [-1, 1]: the canvas background's start (starting_plate), or None
    # (1, 1, Hc, Wc) at the working resolution, like the plate: the frame from which an object has reached each
    # canvas pixel (camera.first_reached; the number of frames where none does or too few frames show it
    # before), or None without a canvas background.
    canvas_first_reached: torch.Tensor | None
    object_names: list[str]
    output_frames: torch.Tensor  # (T, 3, H, W) the working-resolution frames
    output_grid: torch.Tensor  # (T, H, W, 2) their canvas positions
    # (T, H, W) bool each, at the working resolution: where the background breaks the camera model
    # (unexplained_background), which the effect claim consults; None where not fitted.
    unexplained: UnexplainedBackground | None = None
    # (T, H, W) bool at the working resolution: what moves over the background as a whole by its own motion
    # (BackgroundFit.moves_coherently: standing things under parallax, unmasked movers), which the stray cut gives no
    # layer away from the masks; None where not fitted.
    moves_coherently: torch.Tensor | None = None
    # (T, H, W) float32 in [0, 1] at the working resolution: how surely each frame shows nothing but the background
    # (BackgroundFit.background_only), where the background detail takes the frame's own pixels; None where not
    # fitted.
    background_only: torch.Tensor | None = None
    # (T, 3, H, W) uint8 at the working resolution: each frame's view of the background fit's relit plate
    # (BackgroundFit.plate_view), and (T, H, W) bool where the frame shows nothing but the background (background_only
    # at 1) on ground that something moving by itself crossed in some frame (BackgroundFit.crossed): there the stray
    # cut finds where the learnt background took that thing in (stray_cut.background_misses); None where not fitted.
    plate_views: torch.Tensor | None = None
    crossed: torch.Tensor | None = None
    # How far an object's effects may lie, in object sizes (BackgroundFitSettings.effect_reach): the copy cut's reach
    # (and the starting plate's, which the video was loaded with).
    effect_reach: float = BackgroundFitSettings.effect_reach
    # The median colour difference (0..1, the largest channel's) at the training size between the frames and the
    # starting plate where no object reaches (background_noise): the clip's grain, compression and resampling, which
    # training's background match rises above (Omnimatte's background_match_threshold); 0 without a starting plate.
    background_noise: float = 0.0
    # Whether the frames' chroma is interpolated from half resolution (chroma_at_half_resolution: 4:2:0 or 4:2:2
    # footage at its own size), where the alpha fit's floor reads the luma alone inside the coarse masks.
    chroma_halved: bool = False

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def footprint(self) -> int:
        """How many working-resolution pixels a training pixel spans a side (1 at the working resolution)."""
        return max(1, round(self.output_frames.shape[-1] / self.frames.shape[-1]))

    @functools.cached_property
    def footprint_frames(self) -> torch.Tensor:
        """output_frames box-filtered over the footprint (box_filter), once for every batch to sample: what a
        training pixel sees of them. output_frames themselves at the working resolution."""
        return box_filter(self.output_frames, self.footprint) if self.footprint > 1 else self.output_frames


def shrink(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average an (N, C, H, W) tensor down to `size`; the tensor itself when it already has that size."""
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor, size=size, mode="area")


def _read_masks(stage: str, sample: str, masks_dir: Path, object_names: list[str], num_frames: int, height: int,
                width: int) -> np.ndarray:
    """The coarse masks as (T, L, H, W) bool, refusing folders that do not match the frames."""
    if not object_names:
        raise StageError(stage, sample, "the sample has no objects", "name at least one object under the sample's `objects`")
    masks = []
    for name in object_names:
        folder = Path(masks_dir) / name
        paths = list_frames(folder)
        if len(paths) != num_frames:
            raise StageError(stage, sample, f"object '{name}' has {len(paths)} masks in {folder} for {num_frames} frames",
                             "rerun the masks stage (snakemake --forcerun masks)")
        stack = read_frames(folder, mode="gray")
        if stack.shape[1:] != (height, width):
            raise StageError(stage, sample, f"masks of '{name}' are {stack.shape[2]}x{stack.shape[1]}, frames {width}x{height}",
                             "rerun the masks stage so masks match the working resolution")
        empty = [t for t in range(num_frames) if not (stack[t] > 127).any()]
        if len(empty) == num_frames:
            raise StageError(stage, sample, f"object '{name}' has an empty mask on every frame",
                             "check the object's prompt or mask folder")
        if empty:
            log.warning("%s: object '%s' has an empty mask on %d frame(s) (first: %d); its layer is driven by the "
                        "other losses there", sample, name, len(empty), empty[0])
        masks.append(stack > 127)
    return np.stack(masks, 1)


def grown_objects(masks: np.ndarray, margin: int) -> np.ndarray:
    """Where any object's mask (T, L, H, W bool), grown by `margin` px, lies: (T, H, W) bool."""
    objects = masks.any(axis=1).astype(np.uint8)
    if margin > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        objects = np.stack([cv2.dilate(mask, kernel) for mask in objects])
    return objects.astype(bool)


def objects_reach(masks: np.ndarray, reach: float) -> np.ndarray:
    """Where each frame may show some object's effects: within `reach` object sizes of any object's mask
    (T, L, H, W bool), as the background fit expects them (reach_zone). (T, H, W) bool."""
    return np.logical_or.reduce([reach_zone(masks[:, i], reach) for i in range(masks.shape[1])])


def starting_plate(frames: np.ndarray, objects: np.ndarray, homographies: np.ndarray, canvas_size: tuple[int, int],
                   reach: np.ndarray) -> np.ndarray:
    """The canvas background's first image: the registered median with the objects (grown_objects) left out, so
    that objects that pass by do not smear into it, and of each pixel's frames those that show it beyond every
    object's reach (`reach`: objects_reach) before one first reaches it; where too few do, whichever lie closer
    to their own median of those beyond reach at any time and those before an object first reaches it, so that
    neither what the objects leave behind nor what they cast ahead of them does either (registered_median).
    (Hc, Wc, 3) float32 in [0, 255]."""
    return registered_median(frames, homographies, canvas_size, exclude=objects, before_first_exclusion=True,
                             within_reach=reach)


def background_noise(frames: np.ndarray, plate: np.ndarray, camera: Camera, excluded: np.ndarray,
                     size: tuple[int, int], min_share: float = 0.01) -> float:
    """How far the frames (T, H, W, 3 uint8) differ from their view of the starting plate (Hc, Wc, 3 in [0, 255]),
    relit by each frame's gains (fit_gains: its exposure and white balance, which the camera adjustment follows),
    where only the background shows, seen at the training size `size` (h, w) as training compares them: each
    frame's median colour difference (0..1, the largest channel's) over its pixels outside `excluded` (T, H, W bool:
    the grown masks and where the objects' effects may lie), shrunk by area averaging; then the median over the
    frames with at least `min_share` of such pixels (0 where none has). One figure for the clip: grain and
    compression hold over a clip, and a frame an object fills leaves too few pixels to measure its own."""
    height, width = size
    levels = []
    for t, frame in enumerate(frames):
        free = cv2.resize(excluded[t].astype(np.float32), (width, height), interpolation=cv2.INTER_AREA) == 0
        if free.mean() < min_share:
            continue
        view = camera.view(plate, t, frame.shape[0], frame.shape[1])
        view = view * fit_gains(frame, view, ~excluded[t]).astype(np.float32)  # relit as the camera adjustment does
        difference = np.abs(cv2.resize(frame.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
                            - cv2.resize(view, (width, height), interpolation=cv2.INTER_AREA)).max(axis=-1)
        levels.append(float(np.median(difference[free])) / 255.0)
    return float(np.median(levels)) if levels else 0.0


def unexplained_background(sample: str, fit: BackgroundFit) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) bool each: where the clip's background moves by itself (the fit's `moves_by_itself`: standing
    things sliding by under parallax, a background that moves by itself, an unmasked mover) and where it fits
    nothing far from every object (`misfit`): the same fit the diagnose stage reports."""
    moving, misfit = unexplained_maps(fit)
    moving_share, misfit_share = moving_and_misfit_shares(fit, moving, misfit)
    log.info("%s: the background fit finds %.2f%% of the background outside the masks moving over it by itself "
             "(parallax, water, an unmasked mover) and %.2f%% fitting nothing far from the objects; the effect claim "
             "gives an object nothing there that stays put on the background", sample, 100 * moving_share,
             100 * misfit_share)
    return moving, misfit


def load_video(sample: str, frames_dir: Path, flow_dir: Path, homography_dir: Path, masks_dir: Path,
               object_names: list[str], trimap_band: int, device: torch.device, scale: float = 1.0,
               *, canvas_plate: bool, background_fit: BackgroundFitSettings | None = None,
               background_fit_file: Path | None = None,
               effect_reach: float = BackgroundFitSettings.effect_reach, stage: str = STAGE) -> VideoTensors:
    """Read the upstream stages' outputs, check that they agree, and resample them to the training scale.

    With canvas_plate, also the canvas background's starting plate (the masked registered median), the frame at
    which an object first reaches each of its pixels and how far the frames differ from the plate where only the
    background shows (background_noise): all warp every frame's masks into the canvas (the plate the frames too),
    so they are only made when the canvas is used. With `background_fit`, also what moves over the background by
    itself or fits nothing (unexplained_background), for the effect claim, and where each frame shows nothing but
    the background (BackgroundFit.background_only), for the background detail, and what moves over it as a whole
    (BackgroundFit.moves_coherently), each frame's view of the fit's plate and where the frame shows only the
    background on ground such a thing crossed (BackgroundFit.crossed), for the stray cut: read from
    `background_fit_file` (the
    background_fit stage's, refused unless made with `background_fit` for these frames) or, without it, fitted
    here. `effect_reach` (object sizes) decides which frames the starting plate trusts, and is kept for the copy
    cut. A problem with the inputs is refused in the name of `stage`, the stage reading them.
    """
    frames = read_frames(frames_dir)
    num_frames, height, width = frames.shape[:3]
    mask_array = _read_masks(stage, sample, masks_dir, object_names, num_frames, height, width)

    forward, backward, confidence = load_flow(stage, sample, FlowFiles(Path(flow_dir)), num_frames, height, width)
    flow = np.zeros((num_frames, 2, height, width), np.float32)
    flow[:-1] = forward.transpose(0, 3, 1, 2)
    # The last frame has no successor; as the network's input it gets its motion from the
    # previous frame reversed, so that its layers look like every other frame's. Its
    # confidence stays zero: the flow loss never judges it.
    flow[-1] = -backward[-1].transpose(2, 0, 1)
    conf = np.zeros((num_frames, 1, height, width), np.float32)
    conf[:-1, 0] = confidence

    camera = load_camera(stage, sample, HomographyFiles(Path(homography_dir)), num_frames)
    homographies, canvas_size = camera.homographies, camera.canvas_size
    unexplained = background_only = moves_coherently = plate_views = crossed = None
    if background_fit is not None:
        if background_fit_file is not None:
            fit = load_background_fit(stage, sample, background_fit_file, background_fit, num_frames, (height, width))
        else:
            confidence_backward = load_array(stage, sample, FlowFiles(Path(flow_dir)).confidence_backward,
                                             (num_frames - 1, height, width), "flow")
            began = time.perf_counter()
            fit = fit_background(frames, camera, {name: mask_array[:, i] for i, name in enumerate(object_names)},
                                 FlowFields(forward, backward, confidence, confidence_backward), background_fit)
            log.info("%s: the background fit took %.1f s", sample, time.perf_counter() - began)
        unexplained = unexplained_background(sample, fit)
        background_only = np.stack([fit.background_only(t) for t in range(num_frames)]).astype(np.float32)
        moves_coherently = np.stack([fit.moves_coherently(t) for t in range(num_frames)])
        plate_views = np.stack([np.clip(np.rint(fit.plate_view(t)), 0, 255).astype(np.uint8).transpose(2, 0, 1)
                                for t in range(num_frames)])
        crossed = fit.crossed() & (background_only >= 1.0)
    plate = reached = None
    noise = 0.0
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if canvas_plate:
        objects = grown_objects(mask_array, margin=max(1, trimap_band // 2))
        reach = objects_reach(mask_array, effect_reach)
        plate = starting_plate(frames, objects, homographies, canvas_size, reach)
        reached = first_reached(homographies, objects, canvas_size)
        noise = background_noise(frames, plate, camera, objects | reach, size)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    output_frames = tensor(frames.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    output_grid = tensor(homography_grid(homographies, height, width, canvas_size))
    mask_tensor = (shrink(tensor(mask_array[:, :, None].astype(np.float32)).flatten(0, 1), size) > 0.5)
    mask_tensor = mask_tensor.to(torch.float32).view(num_frames, len(object_names), 1, *size)
    trimaps = losses.trimap(mask_tensor.flatten(0, 1), max(1, round(trimap_band * scale))).view_as(mask_tensor)
    # Flow in training pixels: (x, y) components scale with the width and height.
    pixel_scale = torch.tensor([size[1] / width, size[0] / height], device=device).view(1, 2, 1, 1)
    return VideoTensors(
        frames=shrink(output_frames, size),
        masks=mask_tensor,
        trimaps=trimaps,
        flow=shrink(tensor(flow), size) * pixel_scale,
        confidence=shrink(tensor(conf), size),
        background_grid=shrink(output_grid.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1).contiguous(),
        background_flow=shrink(tensor(camera_flow(homographies, height, width)), size) * pixel_scale,
        canvas_size=(max(1, round(canvas_size[0] * scale)), max(1, round(canvas_size[1] * scale))),
        plate=None if plate is None else tensor(plate.transpose(2, 0, 1)[None] / 127.5 - 1.0),
        canvas_first_reached=None if reached is None else tensor(reached[None, None].astype(np.float32)),
        object_names=list(object_names),
        output_frames=output_frames,
        output_grid=output_grid,
        unexplained=None if unexplained is None else UnexplainedBackground(*(tensor(m) for m in unexplained)),
        background_only=None if background_only is None else tensor(background_only),
        moves_coherently=None if moves_coherently is None else tensor(moves_coherently),
        plate_views=None if plate_views is None else tensor(plate_views),
        crossed=None if crossed is None else tensor(crossed),
        effect_reach=effect_reach,
        chroma_halved=chroma_at_half_resolution(frames),
        background_noise=noise,
    )
