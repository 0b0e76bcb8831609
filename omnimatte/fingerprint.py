"""What a training checkpoint was made from, so a rerun resumes it only on the same inputs.

Settings and tensor shapes alone do not tell a fixed mask folder, a recomputed flow
or a re-cut video of the same length from the original: a checkpoint trained on
those would be resumed silently. The digest covers the bytes of every input file
training reads, in a fixed order, so any change starts training over.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from omnimatte.contract import FlowFiles, HomographyFiles
from omnimatte.io import list_frames


def inputs_digest(frames_dir: str | os.PathLike, flow_dir: str | os.PathLike, homography_dir: str | os.PathLike,
                  masks_dir: str | os.PathLike, object_names: Sequence[str]) -> str:
    """A hex digest of the frames, masks (per object, in order), flow and homographies training reads.

    Each file enters with its role and name, so moving a file between objects or
    renaming a frame changes the digest as much as changing its pixels.
    """
    files = [("frames", path) for path in list_frames(frames_dir)]
    for name in object_names:
        files += [(f"masks/{name}", path) for path in list_frames(Path(masks_dir) / name)]
    flow, homography = FlowFiles(Path(flow_dir)), HomographyFiles(Path(homography_dir))
    files += [("flow", path) for path in (flow.forward, flow.backward, flow.confidence_forward)]
    files += [("homography", path) for path in (homography.homographies, homography.canvas)]
    digest = hashlib.sha256()
    for role, path in files:
        digest.update(f"{role}/{path.name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def why_not_resumed(saved: object, current: dict[str, str]) -> str:
    """Why a checkpoint with fingerprint `saved` cannot be resumed by a run with `current`, for the log."""
    if not isinstance(saved, dict):
        return "the checkpoint does not record which inputs it was made from"
    if saved.get("inputs") != current["inputs"]:
        return "the inputs changed since the checkpoint (frames, masks, flow or homographies)"
    return "the settings or the model's parameters changed since the checkpoint"
