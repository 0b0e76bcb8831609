"""Stage 3, the masks stage: one coarse mask per object and frame, from a user's mask folder or from SAM.

All objects are checked (and the SAM checkpoint found) before any work, so bad input fails
in seconds; then each object's masks are read or propagated, and written with a preview.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np

from omnimatte.contract import load_flow_field
from omnimatte.devices import resolve_device
from omnimatte.errors import StageError
from omnimatte.io import atomic_dir, list_frames, read_frames, write_frames, write_video
from omnimatte.logs import get_logger
from omnimatte.masks.previews import compose_preview
from omnimatte.masks.prompts import Prompt, split_objects
from omnimatte.masks.propagation import propagate_masks
from omnimatte.masks.sam import SamSegmenter, load_sam, sam_model_types
from omnimatte.masks.user_folders import load_mask_folder
from omnimatte.masks.weights import SAM_URLS, missing_checkpoint

STAGE = "masks"
log = get_logger(STAGE)

Flows = tuple["np.ndarray | None", "np.ndarray | None"]


def read_checked_frames(sample: str, frames_dir: Path, frames_info: dict) -> np.ndarray:
    """The frames (T, H, W, 3) uint8, refused when there are none or the frames info counts others."""
    if not list_frames(frames_dir):
        raise StageError(STAGE, sample, f"no PNG frames in {frames_dir}", "run the frames stage first (or check its log)")
    frames = read_frames(frames_dir)
    if frames_info.get("count") not in (None, len(frames)):
        raise StageError(STAGE, sample, f"{frames_dir} holds {len(frames)} frames but the frames info says "
                         f"{frames_info['count']}", "the frames folder and its info are out of step: rerun the frames stage")
    return frames


def prepare_sam(sample: str, prompted: list[str], frames: np.ndarray, forward_flow: Path | None,
                backward_flow: Path | None, sam_model_type: str, sam_checkpoint: Path | None, sam_url: str | None,
                device: str) -> tuple[SamSegmenter, Flows]:
    """SAM loaded from its checkpoint for the `prompted` objects, and the flows that carry their masks (None where
    not given: no motion)."""
    count, height, width = frames.shape[:3]
    if sam_model_type not in sam_model_types():
        raise StageError(STAGE, sample, f"unknown SAM model type '{sam_model_type}'", f"use one of {', '.join(sam_model_types())}")
    url = sam_url or SAM_URLS.get(sam_model_type)
    if sam_checkpoint is None or not Path(sam_checkpoint).is_file():
        raise missing_checkpoint(sample, prompted, sam_model_type, sam_checkpoint, url)
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
    return SamSegmenter(model), flows


def prompted_masks(sample: str, name: str, frames: np.ndarray, prompt: Prompt, segmenter: SamSegmenter,
                   flows: Flows) -> np.ndarray:
    """Object `name`'s masks (T, H, W) bool from its prompt, carried through the frames by the flows."""
    try:
        masks, kept = propagate_masks(frames, prompt, segmenter, *flows, name=name, progress=True)
    except ValueError as err:
        raise StageError(STAGE, sample, f"object '{name}': SAM finds nothing at the prompt on frame {prompt.frame}",
                         "check the prompt (source-video pixels, on the object) or give a mask folder (`masks:`)") from err
    if kept:
        log.warning("%s: object '%s': SAM gave no mask near the flow-warped one on %d frame(s) %s; kept the warped mask",
                    sample, name, len(kept), kept[:20])
    log.info("%s: object '%s': SAM from key frame %d", sample, name, prompt.frame)
    return masks


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

    out_dir appears only when every object is done.
    """
    frames = read_checked_frames(sample, frames_dir, frames_info)
    count, height, width = frames.shape[:3]
    if not objects:
        raise StageError(STAGE, sample, "no objects are configured", "list at least one object (with a prompt or `masks:`) for the sample")
    user_masks, prompts = split_objects(sample, objects, frames_info, width, height, count)
    segmenter: SamSegmenter | None = None
    flows: Flows = (None, None)
    if prompts:
        segmenter, flows = prepare_sam(sample, list(prompts), frames, forward_flow, backward_flow, sam_model_type,
                                       sam_checkpoint, sam_url, device)

    results: dict[str, np.ndarray] = {}
    for name in objects:
        if name in user_masks:
            results[name] = load_mask_folder(sample, name, user_masks[name], frames_info, width, height, count)
            log.info("%s: object '%s': %d masks from %s", sample, name, count, user_masks[name])
        else:
            results[name] = prompted_masks(sample, name, frames, prompts[name], segmenter, flows)
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
