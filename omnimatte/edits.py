"""What users do with omnimattes: remove an object, colour pop, stroboscope, a new
background, a layer moved in time.

Every edit reads only the output contract of a finished sample (the layers, the
background, the frames and the homographies), so it runs on any sample, whichever
model made the layers. An object's layer carries its effects, so whatever an edit
does to the object it does to its shadow and reflection too. Layers are composited
back to front with "over" in premultiplied float; a layer taken from another frame
(stroboscope, retiming) is first carried into the frame's view through the camera
homographies, so it stays put on the ground while the camera moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from omnimatte.camera import Camera
from omnimatte.contract import OmnimatteFiles, SampleResults
from omnimatte.errors import StageError
from omnimatte.imaging import over, premultiply, to_uint8
from omnimatte.imaging.luma_chroma import LUMA
from omnimatte.io import SourceAudio, list_frames, read_png, write_png, write_video
from omnimatte.logs import get_logger

STAGE = "edits"
log = get_logger(STAGE)

class Layers:
    """A finished sample's layers on disk (results/{sample}/omnimatte/), read one frame at a time.

    Checks on opening that every named layer exists with one image per frame, and
    says which layers there are when one is missing.
    """

    def __init__(self, sample: str, omnimatte_dir: Path, object_names: list[str], stage: str = STAGE) -> None:
        self.sample, self.stage = sample, stage
        self.names = list(object_names)
        root = OmnimatteFiles(Path(omnimatte_dir))
        self.background_paths = list_frames(root.background)
        if not self.background_paths:
            raise StageError(stage, sample, f"no layers in {root.folder} (no background frames)",
                             f"make them first: snakemake --cores 8 {SampleResults.of(sample).overview}")
        present = sorted(p.name for p in root.layers.iterdir() if p.is_dir()) if root.layers.is_dir() else []
        self.layer_paths: dict[str, list[Path]] = {}
        for name in self.names:
            paths = list_frames(root.layer(name))
            if not paths:
                raise StageError(stage, sample,
                                 f"no layer '{name}' in {root.layers} (it has: {', '.join(present) or 'none'})",
                                 "use one of those object names, or retrain after changing the sample's objects "
                                 "(snakemake --forcerun train)")
            if len(paths) != len(self.background_paths):
                raise StageError(stage, sample,
                                 f"layer '{name}' has {len(paths)} frames, the background {len(self.background_paths)}",
                                 "rerun the render stage (snakemake --forcerun render)")
            self.layer_paths[name] = paths
        self.height, self.width = read_png(self.background_paths[0]).shape[:2]

    @property
    def num_frames(self) -> int:
        return len(self.background_paths)

    def check_object(self, name: str) -> None:
        if name not in self.layer_paths:
            raise StageError(self.stage, self.sample, f"no object '{name}' (the sample's objects: {', '.join(self.names)})",
                             "name one of the sample's objects")

    def check_frame(self, t: int, setting: str) -> None:
        """Stop when the frame number given by the config key `setting` is outside the clip."""
        if not 0 <= t < self.num_frames:
            raise StageError(self.stage, self.sample,
                             f"{setting} = {t} is not a frame of the clip (0 to {self.num_frames - 1})",
                             f"set {setting} to a frame in that range")

    def background(self, t: int) -> np.ndarray:
        """The background as frame t sees it: (H, W, 3) float32 in [0, 1]."""
        return read_png(self.background_paths[t]).astype(np.float32) / 255.0

    def layer(self, name: str, t: int) -> np.ndarray:
        """Object `name`'s layer on frame t, premultiplied: (H, W, 4) float32, colour times alpha and alpha."""
        return premultiply(read_png(self.layer_paths[name][t], mode="rgba"))




def grey(image: np.ndarray) -> np.ndarray:
    """The luma of an RGB image in all three channels: the grey a colour pop turns the rest of the frame into."""
    return np.repeat((image @ LUMA)[..., None], 3, axis=2)


def fill_size(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale `image` to cover width x height and crop the centre, keeping its aspect."""
    scale = max(width / image.shape[1], height / image.shape[0])
    scaled_w, scaled_h = max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))
    scaled = cv2.resize(image, (scaled_w, scaled_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x0, y0 = (scaled_w - width) // 2, (scaled_h - height) // 2
    return scaled[y0:y0 + height, x0:x0 + width]


# ---------------------------------------------------------------------------- edits


def remove_object(layers: Layers, removed: str) -> Iterator[np.ndarray]:
    """Every other layer over the background: the object goes, and with it its shadow and reflection."""
    layers.check_object(removed)
    for t in range(layers.num_frames):
        image = layers.background(t)
        for name in layers.names:
            if name != removed:
                image = over(image, layers.layer(name, t))
        yield to_uint8(image)


def colorpop(layers: Layers, frames_dir: Path, kept: list[str]) -> Iterator[np.ndarray]:
    """The input frames in colour where the kept layers show (their alpha, so their effects too), grey elsewhere.

    A kept layer hidden behind another object's layer turns grey where it is hidden.
    """
    for name in kept:
        layers.check_object(name)
    frames = list_frames(frames_dir)
    if len(frames) != layers.num_frames:
        raise StageError(STAGE, layers.sample, f"{len(frames)} frames in {frames_dir} for {layers.num_frames} layer frames",
                         "rerun the pipeline for the sample so the frames and layers match")
    for t, path in enumerate(frames):
        frame = read_png(path).astype(np.float32) / 255.0
        shown = np.zeros(frame.shape[:2] + (1,), np.float32)  # how much of the pixel the kept layers make
        for name in layers.names:
            alpha = layers.layer(name, t)[..., 3:]
            shown = (alpha if name in kept else 0.0) + (1.0 - alpha) * shown
        yield to_uint8(shown * frame + (1.0 - shown) * grey(frame))


def copy_frames(num_frames: int, interval: int) -> list[int]:
    """The frames a stroboscope copies the object from: every `interval`-th, from the first."""
    return list(range(0, num_frames, interval))


def stroboscope_image(layers: Layers, camera: Camera, strobed: str, interval: int, frame: int) -> np.ndarray:
    """Copies of one layer from every `interval`-th frame over frame `frame`'s background and other layers.

    The copies keep the layer's depth among the objects and are laid in time order,
    each later copy over the earlier ones, so the motion reads forwards.
    """
    layers.check_object(strobed)
    layers.check_frame(frame, "edits.stroboscope.frame")
    image = layers.background(frame)
    for name in layers.names:
        if name == strobed:
            for source in copy_frames(layers.num_frames, interval):
                image = over(image, camera.carry(layers.layer(name, source), source, frame))
        else:
            image = over(image, layers.layer(name, frame))
    return to_uint8(image)


def stroboscope_frames(layers: Layers, camera: Camera, strobed: str, interval: int) -> Iterator[np.ndarray]:
    """The video: the object leaves a copy every `interval` frames, which stays in place as the clip plays."""
    layers.check_object(strobed)
    copies = copy_frames(layers.num_frames, interval)
    for t in range(layers.num_frames):
        image = layers.background(t)
        for name in layers.names:
            if name == strobed:
                for source in [s for s in copies if s < t] + [t]:
                    image = over(image, camera.carry(layers.layer(name, source), source, t))
            else:
                image = over(image, layers.layer(name, t))
        yield to_uint8(image)


def replacement_background(layers: Layers, camera: Camera, color: list[int] | None = None,
                           image_path: Path | None = None, follow_camera: bool = True) -> Callable[[int], np.ndarray]:
    """Frame t's view of a replacement background: a flat colour, or an image.

    An image that follows the camera covers the whole background canvas and is seen
    by each frame through its homography, so it pans as the original did;
    otherwise it fills the frame and stays fixed on screen.
    """
    if (color is None) == (image_path is None):
        raise StageError(STAGE, layers.sample, "a replacement background needs exactly one of `color` and `image`",
                         "give each entry under edits.backgrounds either color: [r, g, b] or image: path")
    if color is not None:
        plate = np.broadcast_to(np.asarray(color, np.float32) / 255.0, (layers.height, layers.width, 3))
        return lambda t: plate
    if not Path(image_path).is_file():
        raise StageError(STAGE, layers.sample, f"background image {image_path} does not exist",
                         "fix the image path under edits.backgrounds in the config")
    picture = read_png(image_path).astype(np.float32) / 255.0  # cv2 reads JPEG and other formats too
    if not follow_camera:
        plate = fill_size(picture, layers.width, layers.height)
        return lambda t: plate
    canvas_height, canvas_width = camera.canvas_size
    canvas = fill_size(picture, canvas_width, canvas_height)
    return lambda t: camera.view(canvas, t, layers.height, layers.width)


def replace_background(layers: Layers, background: Callable[[int], np.ndarray]) -> Iterator[np.ndarray]:
    """All layers, with their shadows and reflections, over a new background."""
    for t in range(layers.num_frames):
        image = background(t)
        for name in layers.names:
            image = over(image, layers.layer(name, t))
        yield to_uint8(image)


def retime(layers: Layers, camera: Camera, moved: str, source_frame: Callable[[int], int]) -> Iterator[np.ndarray]:
    """One layer shows frame source_frame(t) on frame t; the background and other layers play as recorded."""
    layers.check_object(moved)
    for t in range(layers.num_frames):
        image = layers.background(t)
        for name in layers.names:
            if name == moved:
                source = source_frame(t)
                image = over(image, camera.carry(layers.layer(name, source), source, t))
            else:
                image = over(image, layers.layer(name, t))
        yield to_uint8(image)


def shifted(num_frames: int, shift: int) -> Callable[[int], int]:
    """Frame t shows frame t - shift: a positive shift makes the layer late; it waits at the clip's ends."""
    return lambda t: min(max(t - shift, 0), num_frames - 1)


def frozen(frame: int) -> Callable[[int], int]:
    """Every frame shows `frame`."""
    return lambda t: frame


# ----------------------------------------------------------------------- commands


def write_edit(sample: str, what: str, frames: Iterator[np.ndarray], num_frames: int, out_path: Path,
               fps: float | Fraction, audio: SourceAudio | None = None) -> int:
    """Encode an edit's frames as an MP4 at the source's exact rate, with its sound when given, and a progress bar."""
    count = write_video(out_path, tqdm(frames, total=num_frames, desc=f"{sample}: {what}", unit="frame"), fps,
                        audio=audio)
    log.info("%s: wrote %s (%d frames%s)", sample, out_path, count, ", with the source's sound" if audio else "")
    return count


def run_remove(layers: Layers, removed: str, out_path: Path, fps: float | Fraction,
               audio: SourceAudio | None = None) -> int:
    return write_edit(layers.sample, f"remove {removed}", remove_object(layers, removed), layers.num_frames,
                      out_path, fps, audio)


def run_colorpop(layers: Layers, frames_dir: Path, kept: list[str], out_path: Path, fps: float | Fraction,
                 audio: SourceAudio | None = None) -> int:
    return write_edit(layers.sample, f"colour pop {'+'.join(kept)}", colorpop(layers, frames_dir, kept),
                      layers.num_frames, out_path, fps, audio)


def run_stroboscope(layers: Layers, camera: Camera, strobed: str, image_path: Path, video_path: Path,
                    fps: float | Fraction,
                    interval: int = 16, frame: int | None = None) -> int:
    """The still over frame `frame` (None: the middle frame) and the video."""
    if interval < 1:
        raise StageError(STAGE, layers.sample, f"stroboscope interval {interval} is below 1 frame",
                         "set edits.stroboscope.interval to 1 or more")
    frame = layers.num_frames // 2 if frame is None else frame
    write_png(image_path, stroboscope_image(layers, camera, strobed, interval, frame))
    log.info("%s: wrote %s (%d copies of '%s' over frame %d)", layers.sample, image_path,
             len(copy_frames(layers.num_frames, interval)), strobed, frame)
    return write_edit(layers.sample, f"stroboscope {strobed}", stroboscope_frames(layers, camera, strobed, interval),
                      layers.num_frames, video_path, fps)


def run_replace_background(layers: Layers, camera: Camera, out_path: Path, fps: float | Fraction,
                           audio: SourceAudio | None = None, color: list[int] | None = None,
                           image: str | None = None, follow_camera: bool = True) -> int:
    background = replacement_background(layers, camera, color, Path(image) if image else None, follow_camera)
    return write_edit(layers.sample, "new background", replace_background(layers, background), layers.num_frames,
                      out_path, fps, audio)


def run_retime(layers: Layers, camera: Camera, moved: str, out_path: Path, fps: float | Fraction,
               shift: int | None = None,
               freeze: int | None = None) -> int:
    """Shift the layer by `shift` frames, or freeze it on frame `freeze`; exactly one of them."""
    if (shift is None) == (freeze is None):
        raise StageError(STAGE, layers.sample, "retiming needs exactly one of `shift` and `freeze`",
                         "pass --settings '{\"shift\": 12}' or --settings '{\"freeze\": 0}'")
    if freeze is not None:
        layers.check_frame(freeze, "edits.freeze")
        source, what = frozen(freeze), f"freeze {moved} on frame {freeze}"
    else:
        source, what = shifted(layers.num_frames, shift), f"shift {moved} by {shift} frames"
    return write_edit(layers.sample, what, retime(layers, camera, moved, source), layers.num_frames, out_path, fps)
