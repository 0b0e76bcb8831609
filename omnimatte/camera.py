"""Camera geometry shared by training, the edits, the export and evaluate.

The homography stage maps every frame into one background canvas: H_t takes frame
pixel (x, y, 1) to canvas pixel coordinates. Everything here derives from that one
convention: where a frame's pixels land on the canvas, the camera's own flow between
frames, the canvas as each frame sees it, a layer carried from one frame's view into
another's, and the registered median of the frames. The contract's `load_camera`
reads a sample's homographies into a Camera.
"""

from __future__ import annotations

import math
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


def frame_corners(width: int, height: int) -> np.ndarray:
    """A frame's outline as homogeneous points (4, 3), clockwise in image coordinates."""
    return np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], dtype=np.float64)


def canvas_coordinates(homographies: np.ndarray, frame_height: int, frame_width: int) -> np.ndarray:
    """Canvas pixel position (x, y) of every frame pixel, (T,H,W,2) float32: where to sample the background."""
    ys, xs = np.mgrid[0:frame_height, 0:frame_width].astype(np.float64)
    homographies = np.asarray(homographies, np.float64)
    coordinates = np.empty((len(homographies), frame_height, frame_width, 2), np.float32)
    # Frame by frame: the whole clip's float64 temporaries at once cost more in page faults than in arithmetic.
    for matrix, frame_coordinates in zip(homographies, coordinates):
        # Each row of H times (x, y, 1), summed in that order (as einsum does, at twice its speed).
        x, y, w = (matrix[i, 0] * xs + matrix[i, 1] * ys + matrix[i, 2] for i in range(3))
        frame_coordinates[..., 0] = x / w
        frame_coordinates[..., 1] = y / w
    return coordinates


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


# The median and first_reached work over the canvas in square tiles of this many pixels a side, each from
# the frames that cover it, so that a long pan's large canvas needs no more memory than one tile's frames.
CANVAS_TILE = 256


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


def _reach_from_areas(inside: np.ndarray, excluded: np.ndarray, min_votes: int, frame_numbers: np.ndarray,
                      num_frames: int) -> np.ndarray:
    """first_reached from the canvas area and excluded area (n, Hc, Wc) bool each of the frames numbered
    `frame_numbers` (increasing; the frames left out cover none of these pixels) of a clip of num_frames."""
    ever = excluded.any(axis=0)
    first = np.where(ever, frame_numbers[excluded.argmax(axis=0)], num_frames)
    before = frame_numbers[:, None, None] < first
    enough = (inside & ~excluded & before).sum(axis=0) >= min_votes
    return np.where(enough, first, num_frames)


def _tiles(homographies: np.ndarray, frame_size: tuple[int, int], canvas_size: tuple[int, int], tile: int):
    """The canvas in tiles: (rows, columns, frame numbers of the frames whose area may touch the tile, their
    homographies into the tile's own pixels), for every tile some frame touches."""
    if tile < 1:
        raise ValueError(f"tile must be at least 1 pixel, got {tile}")
    frame_height, frame_width = frame_size
    outlines = np.einsum("tij,kj->tki", homographies, frame_corners(frame_width, frame_height))
    outlines = outlines[..., :2] / outlines[..., 2:]
    low, high = outlines.min(axis=1) - 2, outlines.max(axis=1) + 2  # (T, 2) x, y; a pixel's margin for filtering
    height, width = canvas_size
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            numbers = np.flatnonzero((high[:, 0] >= left) & (low[:, 0] <= right)
                                     & (high[:, 1] >= top) & (low[:, 1] <= bottom))
            if len(numbers):
                shifted = np.einsum("ij,tjk->tik", translation(-left, -top), homographies[numbers])
                yield slice(top, bottom), slice(left, right), numbers, shifted


def registered_median(frames: np.ndarray, homographies: np.ndarray, canvas_size: tuple[int, int],
                      exclude: np.ndarray | None = None, before_first_exclusion: bool = False,
                      within_reach: np.ndarray | None = None, min_votes: int = 2,
                      tile: int = CANVAS_TILE) -> np.ndarray:
    """The per-pixel median of the frames warped into the canvas (canvas_size: height, width), float32 (Hc,Wc,3).

    Only frames that cover a canvas pixel vote on it: those whose pixel area it lies in,
    out to the outer half of their edge pixels (which take the edge pixel's colour), so
    that a canvas pixel seen only by some frame's outermost pixels, as at the canvas's
    rim when the camera moves by fractions of a pixel, still gets a value. With
    `exclude` (T,H,W bool, e.g. the objects' coarse masks), those frame pixels do not
    vote either, so a canvas pixel that some frame shows free of objects gets the median
    of those frames only; a pixel every frame excludes falls back to the median of all
    frames covering it. With `before_first_exclusion`, only the frames before the one
    first_reached gives vote on it. With `within_reach` too (T,H,W bool: where each frame may
    show an object's effects, near its mask), the frames that show a pixel free and beyond
    every object's reach before one first reaches it vote, where min_votes do; elsewhere
    those that show it beyond every object's reach at any time or those before an object
    first reaches it, whichever lie closer to their own median (_trusted_votes). What an
    object leaves behind trails it, and what it casts ahead (a shadow on the ground it walks
    towards) lies there from the clip's first frame until it arrives, so neither the frames
    after an object nor those just before it can be trusted near it. Pixels no frame covers
    take the nearest covered pixel's value, so that sampling the canvas between them and a
    covered one never blends in black.
    Made tile by tile (CANVAS_TILE); the tile's size changes the result only by the warp's rounding (a ten-thousandth
    of a level). `frames`: (T, H, W, 3), uint8 or finite floats.
    """
    if min_votes < 1:
        raise ValueError(f"min_votes must be at least 1, got {min_votes}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    if np.issubdtype(frames.dtype, np.floating) and not np.isfinite(frames).all():
        raise ValueError("frames must be finite: a NaN or infinite value would count as a vote")
    height, width = canvas_size
    plate = np.zeros((height, width, 3), np.float32)
    covered = np.zeros((height, width), bool)
    tiles = list(_tiles(homographies, frames.shape[1:3], canvas_size, tile))
    most = max((len(numbers) for _, _, numbers, _ in tiles), default=0)
    scratch = _TileScratch(most * min(tile, height) * min(tile, width) * 3)
    for rows, columns, numbers, shifted in tiles:
        size = (rows.stop - rows.start, columns.stop - columns.start)
        plate[rows, columns], covered[rows, columns] = _median_of_tile(
            frames, numbers, shifted, size, exclude, before_first_exclusion, within_reach, min_votes, scratch)
    if covered.any() and not covered.all():
        # Each pixel's nearest covered pixel: the labels number the covered (zero) pixels in raster order.
        _, nearest = cv2.distanceTransformWithLabels((~covered).astype(np.uint8), cv2.DIST_L2, 5,
                                                     labelType=cv2.DIST_LABEL_PIXEL)
        plate[~covered] = plate[covered][nearest[~covered] - 1]
    return plate


class _TileScratch:
    """Two float32 buffers large enough for any tile's stack of frames, reused from tile to tile: allocating
    arrays that size afresh for every tile costs a page fault every 4 KiB, on a virtual machine more than half of
    the median's time."""

    def __init__(self, size: int) -> None:
        self._stack = np.empty(size, np.float32)
        self._rows = np.empty(size, np.float32)

    def stack(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first buffer as an array of `shape` (its values left as they were)."""
        return self._stack[:math.prod(shape)].reshape(shape)

    def rows(self, shape: tuple[int, ...]) -> np.ndarray:
        """The second buffer as an array of `shape` (its values left as they were)."""
        return self._rows[:math.prod(shape)].reshape(shape)


def _median_of_tile(frames: np.ndarray, frame_numbers: np.ndarray, homographies: np.ndarray, size: tuple[int, int],
                    exclude: np.ndarray | None, before_first_exclusion: bool, within_reach: np.ndarray | None,
                    min_votes: int, scratch: _TileScratch) -> tuple[np.ndarray, np.ndarray]:
    """registered_median of one tile (size: height, width) from the frames numbered `frame_numbers` (increasing),
    with their homographies into the tile: the tile's plate and which of its pixels some frame covers."""
    height, width = size
    count = len(frame_numbers)
    stack = scratch.stack((count, height, width, 3))  # each frame's warp; read only where the frame votes
    inside = np.zeros((count, height, width), bool)
    excluded = np.zeros((count, height, width), bool)
    for i, (number, matrix) in enumerate(zip(frame_numbers, homographies)):
        cv2.warpPerspective(frames[number].astype(np.float32), matrix, (width, height), dst=stack[i],
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # every pixel, in place
        inside[i] = _frame_area(frames.shape[1:3], matrix, size)
        if exclude is not None:
            excluded[i] = _excluded_area(exclude[number], matrix, size)
    kept = inside & ~excluded if exclude is not None else np.zeros_like(inside)
    covered = inside.any(axis=0)
    clean = kept.any(axis=0)  # all False without `exclude`
    if clean.any():
        if before_first_exclusion:
            reached = _reach_from_areas(inside, excluded, min_votes, frame_numbers, len(frames))
            before = frame_numbers[:, None, None] < reached
        else:
            before = np.ones_like(kept)
        if within_reach is not None:
            beyond = kept & ~np.stack([_excluded_area(within_reach[number], matrix, size)
                                       for number, matrix in zip(frame_numbers, homographies)])
            kept = _trusted_votes(stack, beyond & before, beyond, kept & before, min_votes)
        else:
            kept &= before
    # Who votes on each pixel: where some frame shows it free, the frames kept there; elsewhere every frame covering it.
    votes = np.where(clean, kept, inside)
    np.copyto(stack, np.nan, where=~votes[..., None])
    # Each pixel's votes in one contiguous row (a transposing copy), sorted in place.
    ordered = scratch.rows((height * width * 3, count))
    np.copyto(ordered, stack.reshape(count, -1).T)
    ordered.sort(axis=-1)
    median = _median_of_sorted(ordered.reshape(height * width, 3, count), votes.sum(axis=0).reshape(-1, 1, 1))
    plate = np.zeros((height, width, 3), np.float32)
    plate[covered] = median.reshape(height, width, 3)[covered]
    return plate, covered


def _trusted_votes(stack: np.ndarray, untouched: np.ndarray, beyond: np.ndarray, before: np.ndarray,
                   min_votes: int) -> np.ndarray:
    """Which of the frames `stack` (n, H, W, 3) vote on each pixel of the plate, (n, H, W) bool: `untouched` (beyond
    every object's reach before one first reaches the pixel) where at least min_votes frames are; elsewhere
    whichever of `beyond` (beyond reach at any time: after the object has gone, what it leaves behind may linger)
    and `before` (before an object first reaches it: what it casts ahead lies there until it arrives) has min_votes
    frames, and where both have, the steadier: the one whose frames differ less from their own median (the
    ground stays; an effect comes, changes and goes); `before` where neither has."""
    chosen = before.copy()
    take_untouched = untouched.sum(axis=0) >= min_votes
    chosen[:, take_untouched] = untouched[:, take_untouched]
    has_beyond = ~take_untouched & (beyond.sum(axis=0) >= min_votes)
    contest = has_beyond & (before.sum(axis=0) >= min_votes)
    take_beyond = has_beyond & ~contest
    if contest.any():
        take_beyond[contest] = _spread(stack[:, contest], beyond[:, contest]) < _spread(stack[:, contest],
                                                                                         before[:, contest])
    chosen[:, take_beyond] = beyond[:, take_beyond]
    return chosen


def _spread(values: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """How far the voting values (n, P, 3; votes (n, P) bool) lie from their own median: per pixel (P,), the median
    absolute difference, averaged over the channels."""
    voting = np.where(votes[..., None], values, np.nan)
    return nan_median(np.abs(voting - nan_median(voting))).mean(axis=-1)


def nan_median(stack: np.ndarray) -> np.ndarray:
    """The median over the first axis of what is not NaN, NaN where nothing is: np.nanmedian(stack, axis=0), value
    for value, by one sort along that axis (np.nanmedian's masked-array path took half of the background fit)."""
    ordered = np.ascontiguousarray(np.moveaxis(stack, 0, -1))  # rows to sort in place: np.sort of the moved axis
    ordered.sort(axis=-1)  # sorts strided, at half the speed; NaN sorts last
    return _median_of_sorted(ordered, (len(stack) - np.count_nonzero(np.isnan(stack), axis=0))[..., None])


def _median_of_sorted(ordered: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The median of the first `counts` values of each row of `ordered` (..., n), sorted with NaN last: the mean
    of the middle two where the count is even, NaN where it is 0 (a row of NaN). `counts` broadcasts against
    `ordered` but for its last axis, of length 1."""
    low = np.take_along_axis(ordered, np.maximum(counts - 1, 0) // 2, axis=-1)[..., 0]
    high = np.take_along_axis(ordered, np.minimum(counts // 2, ordered.shape[-1] - 1), axis=-1)[..., 0]
    return (low + high) / np.asarray(2, ordered.dtype)


def first_reached(homographies: np.ndarray, exclude: np.ndarray, canvas_size: tuple[int, int],
                  min_votes: int = 2, tile: int = CANVAS_TILE) -> np.ndarray:
    """For each canvas pixel (canvas_size: height, width), the first frame whose `exclude` (T,H,W bool, e.g. the
    objects' grown masks) touches it, where at least `min_votes` frames show it free before then; elsewhere
    (no object reaches it, or too few frames show it before one does) the number of frames. (Hc, Wc) int.

    What an object leaves behind (dust, a wake, tracks) trails it, so a pixel shows the
    background before the object first reaches it, and after that, for as long as the
    effect lingers, maybe not. Made tile by tile, as registered_median.
    """
    if min_votes < 1:
        raise ValueError(f"min_votes must be at least 1, got {min_votes}")
    num_frames, frame_size = len(exclude), exclude.shape[1:3]
    reached = np.full(canvas_size, num_frames, np.int64)
    for rows, columns, numbers, shifted in _tiles(homographies, frame_size, canvas_size, tile):
        size = (rows.stop - rows.start, columns.stop - columns.start)
        inside = np.stack([_frame_area(frame_size, matrix, size) for matrix in shifted])
        excluded = np.stack([_excluded_area(exclude[n], matrix, size) for n, matrix in zip(numbers, shifted)])
        reached[rows, columns] = _reach_from_areas(inside, excluded, min_votes, numbers, num_frames)
    return reached


def frame_view(canvas: np.ndarray, homography: np.ndarray, frame_height: int, frame_width: int) -> np.ndarray:
    """One frame's view of a canvas image, sampled where its homography maps each pixel; edges extend outward."""
    xy = canvas_coordinates(homography[None], frame_height, frame_width)[0]
    return cv2.remap(canvas, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def view_canvas(canvas: np.ndarray, homographies: np.ndarray, frame_height: int, frame_width: int) -> np.ndarray:
    """Each frame's view of a canvas image in [0, 255]: uint8 (T,H,W,3)."""
    views = [frame_view(canvas, matrix, frame_height, frame_width) for matrix in homographies]
    return np.clip(np.rint(np.stack(views)), 0, 255).astype(np.uint8)
