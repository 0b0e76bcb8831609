"""A user's own mask folder for an object: its PNGs in frame order, matched to the extracted frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from omnimatte.errors import StageError
from omnimatte.io import SequenceNamingError, name_list, numbered_pngs, read_png
from omnimatte.logs import get_logger

STAGE = "masks"
log = get_logger(STAGE)


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
    except SequenceNamingError as err:
        raise StageError(STAGE, sample, f"object '{name}': cannot tell the frame order of mask folder {folder}: {err}",
                         f"{err.fix} (masks are named with one pattern and one frame number each, e.g. 00000.png ... "
                         "or mask_0.png ...)") from err
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
