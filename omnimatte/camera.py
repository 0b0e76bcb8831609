"""Camera geometry shared by training, the edits, the export and evaluate.

The homography stage maps every frame into one background canvas: H_t takes frame
pixel (x, y, 1) to canvas pixel coordinates. Everything here derives from that one
convention: where a frame's pixels land on the canvas, the camera's own flow between
frames, the canvas as each frame sees it, a layer carried from one frame's view into
another's, and the registered median of the frames. The contract's `load_camera`
reads a sample's homographies into a Camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def translation(dx: float, dy: float) -> np.ndarray:
    """The 3x3 homography that moves every point by (dx, dy): how a canvas or a sprite is offset."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Camera:
    """A sample's homographies (T,3,3) float64, frame pixel -> canvas pixel, and its canvas's (height, width)."""

    homographies: np.ndarray
    canvas_size: tuple[int, int]

    def frame_to_frame(self, source: int, target: int) -> np.ndarray:
        """The 3x3 map from frame `source`'s pixels to frame `target`'s."""
        return np.linalg.inv(self.homographies[target]) @ self.homographies[source]

    def carry(self, image: np.ndarray, source: int, target: int) -> np.ndarray:
        """A premultiplied layer of frame `source` as frame `target` would see it (transparent where unseen)."""
        matrix = self.frame_to_frame(source, target)
        if np.allclose(matrix, np.eye(3), atol=1e-6):
            return image
        height, width = image.shape[:2]
        return cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def view(self, canvas: np.ndarray, t: int, frame_height: int, frame_width: int) -> np.ndarray:
        """Frame t's view of an image laid over the whole canvas, in the image's dtype."""
        return frame_view(canvas, self.homographies[t], frame_height, frame_width)


def canvas_coordinates(homographies: np.ndarray, frame_height: int, frame_width: int) -> np.ndarray:
    """Canvas pixel position (x, y) of every frame pixel, (T,H,W,2) float32: where to sample the background."""
    ys, xs = np.mgrid[0:frame_height, 0:frame_width].astype(np.float64)
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1)
    mapped = np.einsum("tij,hwj->thwi", homographies, points)
    return (mapped[..., :2] / mapped[..., 2:]).astype(np.float32)


def homography_grid(homographies: np.ndarray, height: int, width: int, canvas_size: tuple[int, int]) -> np.ndarray:
    """For each frame, where each pixel centre lands on the canvas, normalised for grid_sample to [-1, 1].

    Normalised positions do not depend on the canvas's resolution, so the same grid
    samples a canvas held at any scale.
    """
    coords = canvas_coordinates(homographies, height, width)
    canvas_h, canvas_w = canvas_size
    coords[..., 0] = (coords[..., 0] + 0.5) / canvas_w * 2 - 1
    coords[..., 1] = (coords[..., 1] + 0.5) / canvas_h * 2 - 1
    return coords


def camera_flow(homographies: np.ndarray, height: int, width: int) -> np.ndarray:
    """The flow t -> t+1 that the camera alone causes: x -> H_{t+1}^-1 H_t x. (T,2,H,W); the last is zero."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack((xs, ys, np.ones_like(xs)), -1).reshape(-1, 3)
    flows = np.zeros((len(homographies), 2, height, width), np.float32)
    for t in range(len(homographies) - 1):
        relative = np.linalg.inv(homographies[t + 1]) @ homographies[t]
        mapped = points @ relative.T
        mapped = mapped[:, :2] / mapped[:, 2:3]
        flows[t] = (mapped - points[:, :2]).T.reshape(2, height, width)
    return flows


def _frame_area(frame_size: tuple[int, int], homography: np.ndarray, canvas_size: tuple[int, int]) -> np.ndarray:
    """The canvas pixels (Hc, Wc) bool that a frame's pixel area covers, out to the outer half of its edge
    pixels (bilinear weight 0.5 half a pixel past the edge ones, 1 between pixel centres)."""
    height, width = canvas_size
    return cv2.warpPerspective(np.ones(frame_size, np.float32), homography, (width, height),
                               flags=cv2.INTER_LINEAR) >= 0.5 - 1e-4


def _excluded_area(exclude: np.ndarray, homography: np.ndarray, canvas_size: tuple[int, int]) -> np.ndarray:
    """The canvas pixels (Hc, Wc) bool that any excluded pixel of a frame (H, W bool) touches."""
    height, width = canvas_size
    return cv2.warpPerspective(exclude.astype(np.float32), homography, (width, height), flags=cv2.INTER_LINEAR) > 0.0


def _reach_from_areas(inside: np.ndarray, excluded: np.ndarray, min_votes: int) -> np.ndarray:
    """first_reached from each frame's canvas area and excluded area, (T, Hc, Wc) bool each."""
    num_frames = len(inside)
    ever = excluded.any(axis=0)
    first = np.where(ever, excluded.argmax(axis=0), num_frames)
    before = np.arange(num_frames)[:, None, None] < first
    enough = (inside & ~excluded & before).sum(axis=0) >= min_votes
    return np.where(enough, first, num_frames)


def first_reached(homographies: np.ndarray, exclude: np.ndarray, canvas_size: tuple[int, int],
                  min_votes: int = 2) -> np.ndarray:
    """For each canvas pixel (canvas_size: height, width), the first frame whose `exclude` (T,H,W bool, e.g. the
    objects' grown masks) touches it, where at least `min_votes` frames show it free before then; elsewhere
    (no object reaches it, or too few frames show it before one does) the number of frames. (Hc, Wc) int.

    What an object leaves behind (dust, a wake, tracks) trails it, so a pixel shows the
    background before the object first reaches it, and after that, for as long as the
    effect lingers, maybe not.
    """
    if min_votes < 1:
        raise ValueError(f"min_votes must be at least 1, got {min_votes}")
    frame_size = exclude.shape[1:3]
    inside = np.stack([_frame_area(frame_size, matrix, canvas_size) for matrix in homographies])
    excluded = np.stack([_excluded_area(mask, matrix, canvas_size) for mask, matrix in zip(exclude, homographies)])
    return _reach_from_areas(inside, excluded, min_votes)


def registered_median(frames: np.ndarray, homographies: np.ndarray, canvas_size: tuple[int, int],
                      exclude: np.ndarray | None = None, before_first_exclusion: bool = False,
                      min_votes: int = 2) -> np.ndarray:
    """The per-pixel median of the frames warped into the canvas (canvas_size: height, width), float32 (Hc,Wc,3).

    Only frames that cover a canvas pixel vote on it: those whose pixel area it lies in,
    out to the outer half of their edge pixels (which take the edge pixel's colour), so
    that a canvas pixel seen only by some frame's outermost pixels, as at the canvas's
    rim when the camera moves by fractions of a pixel, still gets a value. With
    `exclude` (T,H,W bool, e.g. the objects' coarse masks), those frame pixels do not
    vote either, so a canvas pixel that some frame shows free of objects gets the median
    of those frames only; a pixel every frame excludes falls back to the median of all
    frames covering it. With `before_first_exclusion`, only the frames before the one
    first_reached gives vote on it. Pixels no frame covers take the nearest covered pixel's
    value, so that sampling the canvas between them and a covered one never blends in black.
    """
    if min_votes < 1:
        raise ValueError(f"min_votes must be at least 1, got {min_votes}")
    height, width = canvas_size
    stack = np.full((len(frames), height, width, 3), np.nan, np.float32)
    inside = np.zeros((len(frames), height, width), bool)
    excluded = np.zeros((len(frames), height, width), bool)
    for t, (frame, matrix) in enumerate(zip(frames, homographies)):
        warped = cv2.warpPerspective(frame.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        inside[t] = _frame_area(frame.shape[:2], matrix, canvas_size)
        stack[t][inside[t]] = warped[inside[t]]
        if exclude is not None:
            excluded[t] = _excluded_area(exclude[t], matrix, canvas_size)
    kept = inside & ~excluded if exclude is not None else np.zeros_like(inside)
    covered = inside.any(axis=0)
    plate = np.zeros((height, width, 3), np.float32)
    clean = kept.any(axis=0)  # all False without `exclude`
    plate[covered & ~clean] = np.nanmedian(stack[:, covered & ~clean], axis=0)
    if clean.any():
        if before_first_exclusion:
            kept &= np.arange(len(frames))[:, None, None] < _reach_from_areas(inside, excluded, min_votes)
        free = stack[:, clean]
        free[~kept[:, clean]] = np.nan
        plate[clean] = np.nanmedian(free, axis=0)
    if covered.any() and not covered.all():
        # Each pixel's nearest covered pixel: the labels number the covered (zero) pixels in raster order.
        _, nearest = cv2.distanceTransformWithLabels((~covered).astype(np.uint8), cv2.DIST_L2, 5,
                                                     labelType=cv2.DIST_LABEL_PIXEL)
        plate[~covered] = plate[covered][nearest[~covered] - 1]
    return plate


def frame_view(canvas: np.ndarray, homography: np.ndarray, frame_height: int, frame_width: int) -> np.ndarray:
    """One frame's view of a canvas image, sampled where its homography maps each pixel; edges extend outward."""
    xy = canvas_coordinates(homography[None], frame_height, frame_width)[0]
    return cv2.remap(canvas, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def view_canvas(canvas: np.ndarray, homographies: np.ndarray, frame_height: int, frame_width: int) -> np.ndarray:
    """Each frame's view of a canvas image in [0, 255]: uint8 (T,H,W,3)."""
    views = [frame_view(canvas, matrix, frame_height, frame_width) for matrix in homographies]
    return np.clip(np.rint(np.stack(views)), 0, 255).astype(np.uint8)
