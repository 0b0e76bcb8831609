"""The README's pictures, made from a finished sample's edits, export and report.

`python -m omnimatte stills --results results/dog --out docs/images` after
`snakemake --cores 2 all edits exports` regenerates every still the README shows,
so they can follow the model as the training improves. Each still is a labelled row
of panels (the input beside the edit) kept small enough for a repository.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from omnimatte.contract import SampleResults
from omnimatte.errors import StageError
from omnimatte.imaging import label, over_checkerboard
from omnimatte.io import list_frames, read_png, read_video, write_image
from omnimatte.logs import get_logger

STAGE = "stills"
log = get_logger(STAGE)

MAX_BYTES = 150_000


def row(panels: list[np.ndarray], captions: list[str | None], max_width: int) -> np.ndarray:
    """Panels of one height side by side, each captioned (None: not), scaled down to at most `max_width` in all."""
    height = min(panel.shape[0] for panel in panels)
    panels = [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_AREA)
              if p.shape[0] != height else p for p in panels]
    gap = np.full((height, 4, 3), 255, np.uint8)
    captioned = [label(panel, caption) if caption else panel for panel, caption in zip(panels, captions)]
    image = np.concatenate([part for panel in captioned for part in (panel, gap)][:-1], axis=1)
    if image.shape[1] > max_width:
        scale = max_width / image.shape[1]
        image = cv2.resize(image, (max_width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return image


def save_small(path: Path, image: np.ndarray) -> None:
    """Write a JPEG (or PNG) still, lowering the JPEG quality until it is under MAX_BYTES."""
    for quality in (88, 80, 70, 60, 50):
        write_image(path, image, jpeg_quality=quality)
        if path.suffix == ".png" or path.stat().st_size <= MAX_BYTES:
            break
    log.info("wrote %s (%dx%d, %d KB)", path, image.shape[1], image.shape[0], path.stat().st_size // 1000)


def make_stills(results: Path, out: Path, object_name: str | None = None, frame: int | None = None,
                max_width: int = 900) -> list[Path]:
    """Write the README's stills for one object of a finished sample; returns their paths.

    `frame` is the frame the video stills show (None: the middle one).
    """
    results, out = SampleResults(Path(results)), Path(out)
    sample = results.root.name
    layers_dir = results.omnimatte.layers
    names = sorted(p.name for p in layers_dir.iterdir()) if layers_dir.is_dir() else []
    object_name = object_name or (names[0] if names else "")

    def needed(path: Path) -> Path:
        if not path.exists():
            raise StageError(STAGE, sample, f"{path} is missing",
                             f"make the sample, its edits and export first: snakemake --cores 2 all edits exports "
                             f"(for {results.root})")
        return path

    def first(pattern: str) -> Path:
        """The first edit matching `pattern`, preferring one that names the object."""
        found = sorted(results.edits.glob(pattern),
                       key=lambda p: object_name not in p.stem.split("_", 1)[1].split("+"))
        return needed(found[0] if found else results.edits / pattern)

    inputs = list_frames(needed(results.frames))
    t = len(inputs) // 2 if frame is None else frame

    def video_frame(path: Path) -> np.ndarray:
        return read_video(needed(path), max_frames=t + 1)[t]

    edit = results.edits
    source = read_png(inputs[t])
    colorpop, background = first("colorpop_*.mp4"), first("background_*.mp4")
    shift, freeze = edit / f"shift_{object_name}.mp4", edit / f"freeze_{object_name}.mp4"
    stills = {
        "overview.jpg": row([video_frame(results.overview)], [None], 2 * max_width),  # labelled already
        "remove.jpg": row([source, video_frame(edit / f"remove_{object_name}.mp4")],
                          ["input", f"remove_{object_name}.mp4"], max_width),
        "colorpop.jpg": row([source, video_frame(colorpop)], ["input", colorpop.name], max_width),
        "stroboscope.jpg": row([read_png(needed(edit / f"stroboscope_{object_name}.png"))],
                               [f"stroboscope_{object_name}.png"], max_width),
        "background.jpg": row([source, video_frame(background)], ["input", background.name], max_width),
        "retime.jpg": row([source, video_frame(shift), video_frame(freeze)], ["input", shift.name, freeze.name],
                          int(1.4 * max_width)),
    }
    export = results.export
    layer = read_png(list_frames(needed(export.layer_frames(object_name)))[t], mode="rgba")
    movie = needed(export.layer_movie(object_name))
    movie_alpha = read_video(movie, mode="rgba", max_frames=t + 1)[t, ..., 3]
    plate = read_png(list_frames(needed(export.background))[t])
    stills["export.jpg"] = row([over_checkerboard(layer), np.repeat(movie_alpha[..., None], 3, axis=2), plate],
                               [f"layers/{object_name}/ (straight RGBA)", f"alpha of layers/{object_name}.mov",
                                "background/ (the plate)"], int(1.4 * max_width))
    stills["runtimes.png"] = read_png(needed(results.runtimes_plot))
    out.mkdir(parents=True, exist_ok=True)
    for name, image in stills.items():
        save_small(out / name, image)
    return [out / name for name in stills]
