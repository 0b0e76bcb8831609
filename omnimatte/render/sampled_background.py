"""Each frame's background sampled from the clip's own frames: the median of what they show there.

The learnt background is one canvas for the whole clip, which each frame sees through its
homography. The ground's texture in it has gone through two resamplings (the frames into the
canvas while training, the canvas into each frame when rendering), each a bilinear blur at a
fraction of a pixel, and it keeps what training left in it: a shadow baked in where an object
stood for a while, which the layers then make up for with faint alpha in every other frame
(copies of the ground in every layer). On footage the texture is most of what separates the
background from the clean plate.

Here frame t's background is drawn straight from the frames, each resampled once: every source
frame (at most `max_sources`, spread evenly over the clip, t among them) is carried into frame t
through the camera (bicubic), its exposure brought to t's (per channel, the median ratio of frame
t to the carried frame over the pixels both show free), and votes where it shows the background:
inside the source away from its rim, outside every coarse mask and where no layer of the
network holds alpha, grown by `margin` pixels. The background is the per-pixel median of the
votes: an effect no layer holds, or a frame's noise, is outvoted; one that lingers where the
network's alpha fades (a dust cloud most frames show) is not, which the learnt canvas, taught
less by the frames after an object came, keeps out better. Where fewer than MIN_VOTES frames
vote (behind an object that never moves off), the learnt background shows, blended in over a
soft edge.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import cv2
import numpy as np

from omnimatte.camera import translation

#: At most this many frames vote on a frame's background, spread evenly over the clip.
MAX_SOURCES = 32
#: Below this many votes a pixel takes the learnt background.
MIN_VOTES = 3
#: A source pixel this close to its frame's edge does not vote (the bicubic kernel's reach).
RIM = 2
#: The learnt background is blended in over a Gaussian edge of this sigma (pixels).
BLEND_SIGMA = 2.0
#: Exposure ratios are measured on every GAIN_STEP-th pixel each way, on pixels at least MIN_GAIN_LEVEL bright (of 1)
#: in every channel, from at least MIN_GAIN_PIXELS of them; otherwise the source keeps its exposure.
GAIN_STEP = 4
MIN_GAIN_LEVEL = 0.05
MIN_GAIN_PIXELS = 64
#: Votes are gathered in strips of rows holding at most this many bytes.
STRIP_BYTES = 128 * 2**20
#: Frames' backgrounds kept once made, up to this many bytes and at least MIN_CACHED of them (the effect claim asks
#: for frames up to 12 either side of the one being rendered; a clip's other passes ask for all of them again).
CACHE_BYTES = 512 * 2**20
MIN_CACHED = 25


def pixel_homographies(grid: np.ndarray) -> np.ndarray:
    """Per frame (T, 3, 3) float64: the homography that takes a frame's pixel (x, y) to where `grid` (T, H, W, 2,
    x then y) puts it, fitted on a lattice of its pixels (exact where the grid comes from a homography)."""
    _, height, width, _ = grid.shape
    ys, xs = np.meshgrid(np.linspace(0, height - 1, 12).round().astype(int),
                         np.linspace(0, width - 1, 12).round().astype(int), indexing="ij")
    source = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    matrices = []
    for frame_grid in grid:
        target = frame_grid[ys.ravel(), xs.ravel()].astype(np.float64)
        matrix, _ = cv2.findHomography(source, target, 0)
        if matrix is None:
            raise ValueError("a frame's canvas grid is degenerate: no homography fits it")
        matrices.append(matrix)
    return np.stack(matrices)


def source_frames(t: int, num_frames: int, max_sources: int) -> list[int]:
    """The frames that vote on frame t's background: all of them, or `max_sources` spread evenly with t among them."""
    if num_frames <= max_sources:
        return list(range(num_frames))
    chosen = set(np.linspace(0, num_frames - 1, max_sources - 1).round().astype(int).tolist())
    chosen.add(t)
    return sorted(chosen)


class SampledBackground:
    """Frames' backgrounds sampled from the frames (the module's docstring).

    frames: (T, H, W, 3) uint8 (a quarter of float32's memory on a long clip); free: (T, H, W) bool, where each
    frame shows the background (outside every coarse mask and every layer's alpha, before growing by `margin`);
    homographies: (T, 3, 3), each frame's pixels into one common plane (pixel_homographies); learnt(t): frame t's
    learnt background (H, W, 3) in [0, 1].
    """

    def __init__(self, *, frames: np.ndarray, free: np.ndarray, homographies: np.ndarray,
                 learnt: Callable[[int], np.ndarray], max_sources: int = MAX_SOURCES, margin: int = 2):
        if frames.shape[:3] != free.shape or len(homographies) != len(frames):
            raise ValueError(f"frames {frames.shape}, free {free.shape} and {len(homographies)} homographies disagree")
        if frames.dtype != np.uint8:
            raise ValueError(f"the frames must be uint8, not {frames.dtype}")
        self.frames, self.homographies, self.learnt, self.max_sources = frames, homographies, learnt, max_sources
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        self.free = np.stack([cv2.erode(f.astype(np.uint8), kernel, borderValue=1) > 0 for f in free])
        # Where each frame votes: free, and away from its rim.
        self.voters = self.free.astype(np.uint8)
        self.voters[:, :RIM], self.voters[:, -RIM:], self.voters[:, :, :RIM], self.voters[:, :, -RIM:] = 0, 0, 0, 0
        self.cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t's background (H, W, 3) float32 in [0, 1] and how many frames voted on each pixel (H, W)."""
        if t in self.cache:
            self.cache.move_to_end(t)
            return self.cache[t]
        made = self._make(t)
        self.cache[t] = made
        if len(self.cache) > max(MIN_CACHED, CACHE_BYTES // (made[0].nbytes + made[1].nbytes)):
            self.cache.popitem(last=False)
        return made

    def to_frame(self, source: int, target: int) -> np.ndarray:
        """The map (3, 3) from frame `source`'s pixels to frame `target`'s."""
        return np.linalg.inv(self.homographies[target]) @ self.homographies[source]

    def gain(self, source: int, target: int) -> np.ndarray:
        """Per channel (3,), what brings frame `source`'s exposure to frame `target`'s: the median ratio of the
        target to the source carried into it, over every GAIN_STEP-th pixel that both show free and bright enough;
        1 without MIN_GAIN_PIXELS of them."""
        if source == target:
            return np.ones(3, np.float32)
        height, width = self.frames.shape[1:3]
        ys, xs = np.mgrid[0:height:GAIN_STEP, 0:width:GAIN_STEP].astype(np.float64)
        points = np.linalg.inv(self.to_frame(source, target)) @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
        sx, sy = (points[0] / points[2]).reshape(xs.shape), (points[1] / points[2]).reshape(xs.shape)
        inside = (points[2].reshape(xs.shape) > 0) & (sx >= RIM) & (sx <= width - 1 - RIM) & (sy >= RIM) & (
            sy <= height - 1 - RIM)
        carried = cv2.remap(self.frames[source], sx.astype(np.float32), sy.astype(np.float32), cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE).astype(np.float32) / 255
        shown = self.frames[target][::GAIN_STEP, ::GAIN_STEP].astype(np.float32) / 255
        free_source = self.free[source][np.clip(sy.round().astype(int), 0, height - 1),
                                        np.clip(sx.round().astype(int), 0, width - 1)]
        usable = (inside & free_source & self.free[target][::GAIN_STEP, ::GAIN_STEP]
                  & (carried.min(axis=-1) > MIN_GAIN_LEVEL) & (shown.min(axis=-1) > MIN_GAIN_LEVEL))
        if usable.sum() < MIN_GAIN_PIXELS:
            return np.ones(3, np.float32)
        return np.median(shown[usable] / carried[usable], axis=0).astype(np.float32)

    def _make(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        num_frames, height, width, _ = self.frames.shape
        sources = source_frames(t, num_frames, self.max_sources)
        gains = {s: self.gain(s, t) for s in sources}
        rows_per_strip = max(8, STRIP_BYTES // (len(sources) * width * 3 * 4))
        median = np.empty((height, width, 3), np.float32)
        votes = np.zeros((height, width), np.int32)
        for top in range(0, height, rows_per_strip):
            rows = slice(top, min(height, top + rows_per_strip))
            strip_height = rows.stop - rows.start
            stack = np.full((len(sources), strip_height, width, 3), np.nan, np.float32)
            for k, s in enumerate(sources):
                if s == t:
                    carried, voting = self.frames[t][rows], self.free[t][rows]
                else:
                    matrix = translation(0, -top) @ self.to_frame(s, t)  # into the strip from row `top`
                    carried = cv2.warpPerspective(self.frames[s], matrix, (width, strip_height), flags=cv2.INTER_CUBIC,
                                                  borderMode=cv2.BORDER_REPLICATE)
                    voting = cv2.warpPerspective(self.voters[s], matrix, (width, strip_height), flags=cv2.INTER_NEAREST,
                                                 borderValue=0) > 0
                np.copyto(stack[k], carried.astype(np.float32) * (gains[s] / 255), where=voting[..., None])
            count = np.isfinite(stack[..., 0]).sum(axis=0)
            ordered = np.sort(stack, axis=0)  # NaN (no vote) last
            lower = np.clip((count - 1) // 2, 0, None)[None, ..., None].repeat(3, axis=-1)
            upper = (count // 2)[None, ..., None].repeat(3, axis=-1)
            middle = 0.5 * (np.take_along_axis(ordered, lower, 0)[0] + np.take_along_axis(ordered, upper, 0)[0])
            median[rows] = np.nan_to_num(middle)
            votes[rows] = count
        enough = cv2.GaussianBlur((votes >= MIN_VOTES).astype(np.float32), (0, 0), BLEND_SIGMA) * (votes > 0)
        if enough.min() < 1.0:
            weight = enough[..., None]
            median = weight * median + (1.0 - weight) * self.learnt(t).astype(np.float32)
        return np.clip(median, 0.0, 1.0).astype(np.float32), votes
