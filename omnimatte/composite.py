"""Stage 6: the overview video, omnimatte.mp4.

A labelled grid per frame: the input, the reconstruction, the background and each
object's layer over a checkerboard with its alpha beside it, so a person sees at a
glance what went where.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from omnimatte.contract import OmnimatteFiles
from omnimatte.diagnose.drawing import outline_flagged
from omnimatte.diagnose.outputs import read_flags
from omnimatte.errors import StageError
from omnimatte.imaging import label, over_checkerboard, tile
from omnimatte.io import list_frames, read_png, write_video
from omnimatte.logs import get_logger

STAGE = "composite"
log = get_logger(STAGE)


def run_composite(sample: str, frames_dir: Path, omnimatte_dir: Path, object_names: list[str], out_path: Path,
                  fps: float | Fraction, notes: list[str] | None = None, flags_path: Path | None = None) -> int:
    """Write the overview video at the frames' exact rate; `notes` (e.g. 'flow: DIS fallback') are printed under the input.

    With `flags_path` (the diagnose stage's flagged regions), the input shows where each check that is not ok
    flags the frame, outlined in the check's colour (diagnostics.png's).
    """
    frames = list_frames(frames_dir)
    omnimatte = OmnimatteFiles(Path(omnimatte_dir))
    sources = {"reconstruction": list_frames(omnimatte.reconstruction), "background": list_frames(omnimatte.background)}
    for name in object_names:
        sources[name] = list_frames(omnimatte.layer(name))
    for key, paths in sources.items():
        if len(paths) != len(frames):
            raise StageError(STAGE, sample, f"{len(paths)} '{key}' images for {len(frames)} frames in {omnimatte.folder}",
                             "rerun the render stage (snakemake --forcerun render)")
    columns = max(3, 2 * len(object_names)) if len(object_names) > 1 else 3
    flags = read_flags(flags_path) if flags_path is not None else None

    def panels_for(t: int) -> list[np.ndarray]:
        image, flagged = read_png(frames[t]), []
        if flags is not None:
            image, flagged = outline_flagged(image, flags, t)
        image = label(image, "input" + (f"  ({'; '.join((notes or []) + flagged)})" if notes or flagged else ""))
        panels = [image,
                  label(read_png(sources["reconstruction"][t]), "reconstruction"),
                  label(read_png(sources["background"][t]), "background")]
        while len(panels) % columns:
            panels.append(np.zeros_like(image))
        for name in object_names:
            rgba = read_png(sources[name][t], mode="rgba")
            panels.append(label(over_checkerboard(rgba), f"layer: {name}"))
            panels.append(label(np.repeat(rgba[..., 3:4], 3, axis=2), f"alpha: {name}"))
        return panels

    grids = (tile(panels_for(t), columns) for t in tqdm(range(len(frames)), desc=f"{sample}: composite", unit="frame"))
    count = write_video(out_path, grids, fps)
    log.info("%s: wrote %s (%d frames)", sample, out_path, count)
    return count


def flow_notes(flow_info_path: Path) -> list[str]:
    """A short note for the video when the flow stage fell back from RAFT."""
    info = json.loads(Path(flow_info_path).read_text())
    return [f"flow: {info['method']} fallback"] if info.get("fallback_reason") else []
