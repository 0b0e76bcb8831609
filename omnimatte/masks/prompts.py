"""An object's prompt from the config (a box and/or points on one key frame): checked and scaled to working pixels.

Prompts are given in the source video's pixels; prompt_problems checks them against the
video's header before any job runs, so a typo is not reported only after SAM's weights
were downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnimatte.config_check import MASKS_OR_PROMPT
from omnimatte.errors import StageError
from omnimatte.io import probe_video

STAGE = "masks"
#: What an object's entry may hold: a mask folder, or a prompt.
SPEC_KEYS = {"masks", "box", "points", "labels", "frame"}


@dataclass(frozen=True)
class Prompt:
    """An object's SAM prompt, already scaled to working-resolution pixels."""

    frame: int
    box: np.ndarray | None  # (4,) float32 x0, y0, x1, y1
    points: np.ndarray | None  # (N, 2) float32 x, y
    labels: np.ndarray | None  # (N,) int32


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
                  f"fix object '{name}' of sample '{sample}'")

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


def prompt_problems(sample: str, objects: dict[str, dict], video: Path) -> dict[str, str]:
    """Prompts that lie outside the source video's frame, found from its header before any job runs,
    so a typo in a box is not reported only after SAM's weights were downloaded and loaded: per object
    name, what is wrong and what to do."""
    try:
        probe = probe_video(Path(video))
    except ValueError:
        return {}  # the frames stage says what is wrong with the video
    size = {"source_width": probe["width"], "source_height": probe["height"]}
    problems = {}
    for name, spec in objects.items():
        if "masks" in spec:
            continue
        try:  # the key frame is checked by the masks stage, once the frames are counted
            parse_prompt(sample, name, {k: v for k, v in spec.items() if k != "frame"}, size, probe["width"],
                         probe["height"], 1)
        except StageError as err:
            problems[name] = f"{err.problem}; {err.fix}"
    return problems


def split_objects(sample: str, objects: dict[str, dict], frames_info: dict, width: int, height: int,
                  count: int) -> tuple[dict[str, Path], dict[str, Prompt]]:
    """The sample's objects checked, as the mask folders of those that have one and the prompts (parse_prompt)
    of the others."""
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
    return user_masks, prompts
