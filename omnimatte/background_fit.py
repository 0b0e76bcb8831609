"""How well the registered background explains each frame: per pixel, per frame, and what breaks it.

Omnimatte explains every change against one static background seen through one homography
per frame. This module measures how far that holds on a clip, outside the objects' masks:

* the plate: the per-pixel median of the frames registered into the canvas, each pixel from
  the frames before an object first reaches it, the objects' masks (grown by a margin) left out;
* per frame, exposure and white balance: one gain per channel of the frame over its view of
  the plate, fitted on the free background and applied before any comparison;
* per frame, the noise level by brightness, from the free, flat pixels' residual, so that every
  threshold is in units of the clip's own noise (and of the flow's, for motion);
* each frame registered anew onto the plate (a dense alignment on the pixels that fit), so that what
  remains is what no homography explains, and how far the given registration was from it;
* per pixel, the residual score: the local RMS of the frame's difference from its relit view of
  the plate over what noise and a registration error of `registration_tolerance` px across the
  plate's texture explain (1 is noise); the relight score: the same after the best change of light
  over the smoothing's width (one gain for all three channels), low where the frame shows the
  plate's own texture darkened or brightened (a shadow, a patch of light: the flow there follows
  the moving edge of the light only in part, in no clear direction); and the change score: the
  residual between consecutive registered frames;
* per pixel, the flow residual: how far the optical flow differs from the flow the homographies
  give the background.

Where the residual is high, something shows that the camera model does not explain: an object's
effect (a shadow, a reflection, dust: near the object, or moving with it) or a background that
breaks the model. The fit tells them apart and keeps four per-frame maps of the latter:

* `moving`: canvas pixels whose registered frames keep changing from one frame to the next in at
  least `persistence` of the frames that show them with no object near (water, foliage, screens),
  with the whole of each changing region that lies there in good part;
* `mover`: regions that move coherently on their own (the flow differs from the camera's by one
  motion over the region), not with a nearby object and not along the camera's motion, that
  show something other than the plate (most of what does not fit there is not the plate under
  other light) and that last from frame to frame (an unmasked person or car); carried on through
  the frames where the flow loses them (beside an object, whose motion the flow bleeds over
  them) into what does not fit and is not the plate under other light beyond the band beside
  an object where the flow bleeds;
* `parallax`: such regions whose own motion runs along the camera's: standing things nearer or
  further than the ground, which slide over it as the camera translates;
* `misfit`: the rest that does not fit: connected regions of high residual that touch no object
  and lie mostly beyond `effect_reach` object sizes from every object, and canvas pixels that do
  not fit in at least `persistence` of their quiet frames before any object came near them (a
  registration error, a lens's distortion; not the dust or tracks an object leaves behind).

Regions are found on the smoothed scores and drawn at the pixels that do not fit.

The effect claim consults `moves_by_itself(t)` (parallax, moving, mover) and `misfit` (an object's
effect cast far, or a registration error) to judge how clearly a region must stay put on the background
to be left out; the diagnose stage reports all of the maps (`unexplainable(t)`: the four together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from omnimatte.camera import Camera, frame_corners, registered_median

#: The median of the RMS over 3 channels of Gaussian noise, in units of its sigma (chi-square with 3 degrees).
RMS_MEDIAN = math.sqrt(2.366 / 3)
#: Noise is never taken below this many levels (of 255): 8-bit rounding and resampling.
MIN_NOISE = 0.5
#: The gain is fitted on pixels of the plate at least this bright in every channel (levels).
MIN_GAIN_LEVEL = 16.0
#: The gains are fitted on every this many pixels in each direction.
GAIN_STEP = 2
#: Flow is trusted where its forward-backward confidence is at least this.
MIN_FLOW_CONFIDENCE = 0.5
#: A region moves coherently when its flow residual vectors spread (median distance from their mean)
#: by less than this share of the mean's length.
COHERENT_SPREAD = 0.5
#: A coherent region's own motion runs along the camera's when the cosine between them is at least this,
#: and the camera moves there by at least MIN_CAMERA_MOTION px a frame.
ALONG_CAMERA = 0.7
MIN_CAMERA_MOTION = 0.25
#: The noise level is measured in this many bins of the plate's brightness, each from at least MIN_BIN_PIXELS.
NOISE_BINS = 16
MIN_BIN_PIXELS = 64
#: Within a region that does not fit, a single pixel does where its residual passes this share of the threshold.
PIXEL_THRESHOLD_SHARE = 2 / 3
#: The dense alignment of each frame onto the plate: its iterations, and the most it may move a frame's corner
#: (a share of the frame's short side; a larger move is a failed alignment, and the frame keeps its homography).
REALIGN_ITERATIONS = 50
MAX_REALIGNMENT = 0.1
#: A canvas pixel is judged on its quiet frames only when at least this share of the clip's frames (and 3) are.
MIN_QUIET_SHARE = 0.1
#: The flow noise (median flow residual of the free background) counts this many times in the motion threshold.
FLOW_NOISE_FACTOR = 4.0
#: A region the flow moves on its own is a change of light (a shadow, a patch of light) and not a thing when a
#: change of light explains (relight score within the threshold) at least this share of its pixels that do not fit.
RELIT_SHARE = 0.5


@dataclass(frozen=True)
class BackgroundFitSettings:
    """How the fit is measured; thresholds are in units of the clip's own noise, of px, or of the frame's size.

    registration_tolerance: px of registration error across the plate's texture that still counts as a fit;
    residual_threshold: the local residual (in noise units) above which a pixel does not fit;
    flow_threshold: px a frame by which a region's flow must differ from the camera's to move on its own
    (raised to FLOW_NOISE_FACTOR times the clip's flow noise where that is larger);
    smoothing: the Gaussian over which residuals are taken, as a share of the frame's short side;
    mask_margin: how far the objects' masks are grown before they are left out, a share of the short side;
    effect_reach: how far an object's effects may reach, in object sizes (the square root of its mask's area);
    persistence: the share of a canvas pixel's quiet frames (no object near) that must not fit, or keep
    changing, for it to be background that breaks the model;
    min_region: the smallest region that counts, as a share of the frame;
    realign: register each frame anew onto the plate first, so that the maps show what no homography explains
    (off: what the given homographies leave unexplained, misregistration included).
    """

    registration_tolerance: float = 0.5
    residual_threshold: float = 3.0
    flow_threshold: float = 0.5
    smoothing: float = 1 / 64
    mask_margin: float = 1 / 50
    effect_reach: float = 2.0
    persistence: float = 0.5
    min_region: float = 0.002
    realign: bool = True


@dataclass(frozen=True)
class FlowFields:
    """The flow stage's fields: forward and backward (T-1, H, W, 2) and their confidences (T-1, H, W)."""

    forward: np.ndarray
    backward: np.ndarray
    confidence_forward: np.ndarray
    confidence_backward: np.ndarray

    def of_frame(self, t: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Frame t's flow to its neighbour, its confidence and the neighbour (t + 1; the last frame: t - 1)."""
        if t < len(self.forward):
            return self.forward[t], self.confidence_forward[t], t + 1
        return self.backward[t - 1], self.confidence_backward[t - 1], t - 1


@dataclass
class BackgroundFit:
    """The fit of a clip's registered background, at the frames' resolution (T frames of H x W).

    camera: the given camera with each frame registered anew onto the plate; registration_error: (T,) px at the
    frame's corners between the two; plate: (Hc, Wc, 3) float32 levels; gains: (T, 3) frame over plate per channel;
    noise: (T,) levels at the frame's median pixel (the noise rises with brightness); noise_curves: (T, NOISE_BINS)
    each frame's noise level by the plate's brightness;
    flow_noise: the median flow residual of the free background (px); camera_motion: (T,) mean px the
    camera moves the background to the neighbouring frame; residual, change: (T, H, W) float32 scores (1 is
    noise); flow_residual: (T, H, W) float32 px (0 without flow); free: outside every grown mask; near: within
    reach of some object; unfit: residual above threshold on free pixels; moving, mover, parallax, misfit: as
    the module says, (T, H, W) bool each.
    """

    settings: BackgroundFitSettings
    camera: Camera
    registration_error: np.ndarray
    plate: np.ndarray
    gains: np.ndarray
    noise: np.ndarray
    noise_curves: np.ndarray
    flow_noise: float
    camera_motion: np.ndarray
    residual: np.ndarray
    change: np.ndarray
    flow_residual: np.ndarray
    free: np.ndarray
    near: np.ndarray
    unfit: np.ndarray
    moving: np.ndarray
    mover: np.ndarray
    parallax: np.ndarray
    misfit: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.residual)

    def explained(self, t: int) -> np.ndarray:
        """(H, W) float32 in [0, 1]: 1 where the relit registered background explains frame t to within noise and
        registration, falling to 0 at twice the threshold; 0 on the objects' (grown) masks, which are not scored."""
        return np.clip(2.0 - self.residual[t] / self.settings.residual_threshold, 0.0, 1.0) * self.free[t]

    def background_only(self, t: int) -> np.ndarray:
        """(H, W) float32 in [0, 1]: how surely frame t shows nothing but the background there: where the registered
        background explains it (`explained`), or where the background moves by itself (`moves_by_itself`: parallax,
        water, an unmasked mover, which no object causes). 0 on the objects' grown masks and wherever the frame
        differs from the background in a way the fit cannot put down to the background."""
        return np.maximum(self.explained(t), self.moves_by_itself(t).astype(np.float32)) * self.free[t]

    def camera_model_misses(self, t: int) -> np.ndarray:
        """(H, W) bool: where frame t's background is static but no homography explains it (parallax, misfit)."""
        return self.parallax[t] | self.misfit[t]

    def moving_background(self, t: int) -> np.ndarray:
        """(H, W) bool: where frame t's background moves by itself (moving, mover)."""
        return self.moving[t] | self.mover[t]

    def _registered(self) -> _Registered:
        """The frames against the fit's plate through its camera (each frame's relit view, noise and tolerance)."""
        return _Registered(self.camera, self.plate, self.gains, self.noise_curves)

    def plate_view(self, t: int) -> np.ndarray:
        """(H, W, 3) float32 levels: frame t's view of the plate, relit by its gains (what `explained` compares the
        frame with)."""
        height, width = self.residual.shape[1:]
        return self._registered().relit(t, height, width)

    def crossed(self) -> np.ndarray:
        """(T, H, W) bool: where each frame sees ground that something moving over it as a whole by itself
        (`moves_coherently`) covered in some frame, found through the canvas: a learnt background, one canvas for
        the whole clip, may hold that thing there in frames where it has gone."""
        num_frames, height, width = self.residual.shape
        moves = np.stack([self.moves_coherently(t) for t in range(num_frames)])
        covered = to_canvas_share(moves, self.free, self.camera) > 0
        return np.stack([_from_canvas(covered, self.camera, t, height, width) for t in range(num_frames)])

    def tolerance(self, t: int) -> np.ndarray:
        """(H, W) float32 levels by which an image of frame t's background may differ from the frame and still fit
        it (the fit's residual divides by this): the frame's noise by brightness, plus `registration_tolerance` px
        across the plate's texture."""
        height, width = self.residual.shape[1:]
        registered = self._registered()
        return registered.tolerance(t, registered.relit(t, height, width), self.settings.registration_tolerance)

    def unexplainable(self, t: int) -> np.ndarray:
        """(H, W) bool: where frame t's background breaks the model (what checks 1 and 2 report)."""
        return self.camera_model_misses(t) | self.moving_background(t)

    def moves_coherently(self, t: int) -> np.ndarray:
        """(H, W) bool: what in frame t moves over the static background as a whole, by its own motion: standing
        things sliding over the ground under parallax and unmasked movers (`parallax`, `mover`), which the flow moves
        on their own, never with an object, and which show something else than the ground under other light, so no
        object's effect (drawn, as every map, at the pixels that do not fit on them and right beside them). Unlike
        `moving` (water, foliage), which an object's shadow or wake may cross."""
        return self.parallax[t] | self.mover[t]

    def moves_by_itself(self, t: int) -> np.ndarray:
        """(H, W) bool: what in frame t moves over the static background by itself: standing things sliding over
        the ground under parallax, a background that moves by itself, an unmasked mover. Unlike `misfit`, which may
        as well be an object's own effect cast far (a bouncing ball's shadow) as a registration error."""
        return self.parallax[t] | self.moving_background(t)


def grow(masks: np.ndarray, radius: int) -> np.ndarray:
    """Each (H, W) mask of a (T, H, W) bool stack grown by `radius` px (a disc)."""
    if radius < 1:
        return masks.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in masks])


def _gradient(image: np.ndarray) -> np.ndarray:
    """Per pixel, the RMS over channels of the image's gradient magnitude (levels per px)."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3) / 8
    return np.sqrt((gx * gx + gy * gy).mean(axis=-1))


def fit_gains(frame: np.ndarray, plate_view: np.ndarray, free: np.ndarray, step: int = GAIN_STEP) -> np.ndarray:
    """The per-channel gain (3,) that best turns the plate's view into the frame on the free pixels (every
    `step`-th in each direction): the median ratio, then least squares on the pixels it fits to within three
    times their median error."""
    frame, plate_view, free = frame[::step, ::step], plate_view[::step, ::step], free[::step, ::step]
    usable = free & (plate_view.min(axis=-1) > MIN_GAIN_LEVEL)
    if usable.sum() < 16:
        return np.ones(3)
    f, p = frame[usable].astype(np.float64), plate_view[usable].astype(np.float64)
    gains = np.median(f / p, axis=0)
    error = np.abs(f - gains * p).max(axis=1)
    kept = error <= 3.0 * max(float(np.median(error)), 1.0)
    if kept.sum() >= 16:
        gains = (f[kept] * p[kept]).sum(axis=0) / (p[kept] ** 2).sum(axis=0)
    return gains


def masked_blur(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a (H, W) image over the pixels `weight` selects, normalised so the others do not bleed in."""
    weight = weight.astype(np.float32)
    num = cv2.GaussianBlur(image.astype(np.float32) * weight, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    return num / np.maximum(den, 1e-3)


def local_score(difference: np.ndarray, tolerance: np.ndarray, free: np.ndarray, sigma: float) -> np.ndarray:
    """The local RMS over the free pixels (Gaussian of `sigma` px) of a (H, W, 3) difference in units of a
    per-pixel (H, W) tolerance; 0 outside the free pixels."""
    rms = np.sqrt((difference * difference).mean(axis=-1))
    score = np.sqrt(masked_blur((rms / tolerance) ** 2, free, sigma))
    score[~free] = 0.0
    return score.astype(np.float32)


def relight_score(frame: np.ndarray, relit: np.ndarray, tolerance: np.ndarray, free: np.ndarray, sigma: float
                  ) -> np.ndarray:
    """The local residual score (as local_score) of a (H, W, 3) frame against its (H, W, 3) relit view of the plate
    once the plate is lit anew by the gain, one for all three channels, that fits the frame best over the free
    pixels within a Gaussian of `sigma` px: low where the frame shows the plate's own texture under other light
    (a shadow, a patch of light), high where it shows something else."""
    weight = free.astype(np.float32)
    product = cv2.GaussianBlur((frame * relit).sum(axis=-1) * weight, (0, 0), sigma)
    energy = cv2.GaussianBlur((relit * relit).sum(axis=-1) * weight, (0, 0), sigma)
    gain = product / np.maximum(energy, 1e-3)
    return local_score(frame - gain[..., None] * relit, tolerance, free, sigma)


def _pixel_grid(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([xs, ys, np.ones_like(xs)], axis=-1)


def camera_flow_between(camera: Camera, source: int, target: int, grid: np.ndarray) -> np.ndarray:
    """The flow (H, W, 2) the homographies give the background from frame `source` to frame `target`."""
    mapped = grid @ camera.frame_to_frame(source, target).T
    return (mapped[..., :2] / mapped[..., 2:] - grid[..., :2]).astype(np.float32)


def to_canvas_share(maps: np.ndarray, counted: np.ndarray, camera: Camera, min_frames: int = 1) -> np.ndarray:
    """Per canvas pixel (Hc, Wc), the share of the frames that count it (`counted`, (T, H, W) bool) in which
    `maps` (T, H, W) bool holds; 0 where fewer than `min_frames` count it."""
    height, width = camera.canvas_size
    hits = np.zeros((height, width), np.float32)
    seen = np.zeros((height, width), np.float32)
    for t in range(len(maps)):
        def warp(image: np.ndarray) -> np.ndarray:
            return cv2.warpPerspective(image.astype(np.float32), camera.homographies[t], (width, height),
                                       flags=cv2.INTER_NEAREST, borderValue=0)
        seen += warp(counted[t])
        hits += warp(maps[t] & counted[t])
    return np.where(seen >= max(min_frames, 1), hits / np.maximum(seen, 1), 0.0)


def before_objects(near: np.ndarray, camera: Camera) -> np.ndarray:
    """(T, H, W) bool: the pixels of each frame whose canvas point no object has come near (`near`, (T, H, W)
    bool) up to that frame. What an object leaves behind (dust, tracks, a wake) lingers after it has passed;
    before, the background shows as it is."""
    height, width = camera.canvas_size
    num_frames, frame_height, frame_width = near.shape
    first = np.full((height, width), num_frames, np.float32)
    for t in range(num_frames):
        reached = cv2.warpPerspective(near[t].astype(np.float32), camera.homographies[t], (width, height),
                                      flags=cv2.INTER_NEAREST, borderValue=0) > 0
        first[reached & (first == num_frames)] = t
    return np.stack([camera.view(first, t, frame_height, frame_width) > t + 0.5 for t in range(num_frames)])


def _from_canvas(canvas_map: np.ndarray, camera: Camera, t: int, height: int, width: int) -> np.ndarray:
    return camera.view(canvas_map.astype(np.float32), t, height, width) > 0.5


def _close(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0


def within_reach(mask: np.ndarray, reach: float) -> np.ndarray:
    """(H, W) bool: within `reach` object sizes (the square root of the mask's area) of `mask` (H, W) bool, where
    an object's effects may lie (effect_reach); nowhere when the mask is empty."""
    area = int(mask.sum())
    if not area:
        return np.zeros_like(mask)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5) <= reach * math.sqrt(area)


def reach_zone(mask: np.ndarray, reach: float) -> np.ndarray:
    """Per frame (T, H, W) bool: within `reach` object sizes (the square root of the mask's area) of the mask
    (T, H, W bool), frame by frame (within_reach)."""
    return np.stack([within_reach(m, reach) for m in mask])


@dataclass
class _Objects:
    """One frame's objects: per object, the distance (H, W) of every pixel from its mask, its reach in px
    (effect_reach object sizes) and its own motion (2,): its median flow less the camera's; None for objects
    absent from the frame (and motion None without flow)."""

    distance: list[np.ndarray | None]
    reach: list[float]
    motion: list[np.ndarray | None]

    @classmethod
    def of_frame(cls, masks: list[np.ndarray], reach: float, flow: np.ndarray | None = None,
                 camera_flow: np.ndarray | None = None) -> _Objects:
        distances, reaches, motions = [], [], []
        for mask in masks:
            area = int(mask.sum())
            if area == 0:
                distances.append(None), reaches.append(0.0), motions.append(None)
                continue
            distances.append(cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5))
            reaches.append(reach * math.sqrt(area))
            motions.append(np.median(flow[mask] - camera_flow[mask], axis=0) if flow is not None else None)
        return cls(distances, reaches, motions)

    def near(self, shape: tuple[int, int]) -> np.ndarray:
        near = np.zeros(shape, bool)
        for distance, reach in zip(self.distance, self.reach):
            if distance is not None:
                near |= distance <= reach
        return near

    def carries(self, region: np.ndarray, region_motion: np.ndarray, threshold: float) -> bool:
        """Whether some object within reach of `region` moves against the background (by more than `threshold` px)
        the way the region does (`region_motion`, its flow less the camera's: the cosine between them at least
        one half): the region is that object's effect (a reflection, a shadow, dust), which the flow follows
        only in part."""
        for distance, reach, motion in zip(self.distance, self.reach, self.motion):
            if distance is None or motion is None or float(distance[region].min()) > reach:
                continue
            size = float(np.linalg.norm(motion))
            if size > threshold and float(np.dot(motion, region_motion)) >= 0.5 * size * float(np.linalg.norm(region_motion)):
                return True
        return False

    def near_within(self, shape: tuple[int, int], distance_px: float) -> np.ndarray:
        """(H, W) bool: within `distance_px` px of some object's mask."""
        near = np.zeros(shape, bool)
        for distance in self.distance:
            if distance is not None:
                near |= distance <= distance_px
        return near

    def touches(self, region: np.ndarray, margin: float) -> bool:
        """Whether `region` comes within `margin` px of some object's mask."""
        return any(distance is not None and float(distance[region].min()) <= margin for distance in self.distance)


def _own_motion(residual: np.ndarray, magnitude: np.ndarray, valid: np.ndarray, camera_flow: np.ndarray,
                objects: _Objects, threshold: float, min_area: float, unfit: np.ndarray, relit: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """One frame's regions that move coherently on their own, (mover, parallax) (H, W) bool: where the smoothed
    flow residual `magnitude` passes `threshold` on `valid` pixels, in regions whose residual vectors (H, W, 2)
    agree, that no nearby object carries and that are not a change of light (of their `unfit` pixels, less than
    RELIT_SHARE `relit`: the plate under other light);
    parallax where their motion runs along the camera's."""
    mover = np.zeros(valid.shape, bool)
    parallax = np.zeros(valid.shape, bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats((valid & (magnitude > threshold)).astype(np.uint8),
                                                               connectivity=8)
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < min_area:
            continue
        region = labels == label
        vectors = residual[region]
        mean = vectors.mean(axis=0)
        if np.median(np.linalg.norm(vectors - mean, axis=1)) > COHERENT_SPREAD * np.linalg.norm(mean):
            continue
        if objects.carries(region, mean, threshold):
            continue
        unfit_pixels = int(np.count_nonzero(unfit[region]))
        if unfit_pixels and np.count_nonzero(relit[region]) >= RELIT_SHARE * unfit_pixels:
            continue
        region_camera = camera_flow[region].mean(axis=0)
        camera_speed = float(np.linalg.norm(region_camera))
        along = float(np.dot(mean, region_camera)) / max(camera_speed * float(np.linalg.norm(mean)), 1e-9)
        if camera_speed >= MIN_CAMERA_MOTION and abs(along) >= ALONG_CAMERA:
            parallax |= region
        else:
            mover |= region
    return mover, parallax


def _lasting(regions: np.ndarray, sigma: float) -> np.ndarray:
    """The connected regions of each frame of (T, H, W) bool `regions` that meet a region of the frame before or
    after once grown by `sigma` px and by how far they move (the span of the region's own motion): something that
    moves on its own lasts from frame to frame, a shadow's edge caught by the flow in one frame does not."""
    lasting = np.zeros_like(regions)
    for t in range(len(regions)):
        count, labels = cv2.connectedComponents(regions[t].astype(np.uint8), connectivity=8)
        if count <= 1:
            continue
        neighbours = np.zeros(regions.shape[1:], bool)
        for s in (t - 1, t + 1):
            if 0 <= s < len(regions):
                neighbours |= regions[s]
        reach = max(1, round(3 * sigma))
        grown = cv2.dilate(neighbours.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
        met = np.zeros(count, bool)
        met[np.unique(labels[grown])] = True
        met[0] = False
        lasting[t] = met[labels]
    return lasting


def _outside(regions: np.ndarray, other: np.ndarray, share: float = 0.3) -> np.ndarray:
    """The connected regions of an (H, W) bool map less than `share` of whose area `other` covers."""
    count, labels = cv2.connectedComponents(regions.astype(np.uint8), connectivity=8)
    if count <= 1:
        return regions
    covered = np.bincount(labels[other], minlength=count) / np.maximum(np.bincount(labels.ravel(), minlength=count), 1)
    keep = covered < share
    keep[0] = False
    return keep[labels]


def _overlapping(regions: np.ndarray, other: np.ndarray, min_area: float, share: float = 0.2) -> np.ndarray:
    """The connected regions of an (H, W) bool map of which `other` covers at least `share` and `min_area` px."""
    count, labels = cv2.connectedComponents(regions.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(regions)
    covered = np.bincount(labels[other & regions], minlength=count)
    keep = (covered >= share * np.bincount(labels.ravel(), minlength=count)) & (covered >= min_area)
    keep[0] = False
    return keep[labels]


def _carried_on(regions: np.ndarray, things: np.ndarray, sigma: float) -> np.ndarray:
    """(T, H, W) bool regions that move on their own, with, in each frame, the regions of `things` (T, H, W bool: what
    shows something else than the background, away from the objects) that meet them in the frame before or after
    (grown by three smoothing widths): a thing that moves on its own goes on doing so where the flow lost it for a
    frame (a thin pole, a blurred mover) or for several (beside an object, whose motion the flow bleeds over it)."""
    reach = max(1, round(3 * sigma))
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    carried = regions.copy()
    for order in (range(1, len(regions)), range(len(regions) - 2, -1, -1)):
        for t in order:
            neighbour = carried[t - 1] if order.step == 1 else carried[t + 1]
            if not neighbour.any():
                continue
            carried[t] |= _overlapping(things[t], cv2.dilate(neighbour.astype(np.uint8), kernel) > 0, 1, share=0.3)
    return carried


def _far_regions(unfit: np.ndarray, objects: _Objects, near: np.ndarray, margin: float, min_area: float
                 ) -> np.ndarray:
    """The connected regions of one frame's (H, W) `unfit` of at least `min_area` px that no object explains: that
    do not touch an object (come within `margin` px of its mask: a shadow at the feet, a trail of dust) and lie
    mostly beyond every object's reach (outside `near`)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(unfit.astype(np.uint8), connectivity=8)
    far = np.zeros_like(unfit)
    inside = np.bincount(labels[near], minlength=count)
    for label in range(1, count):
        area = stats[label, cv2.CC_STAT_AREA]
        if area < min_area or inside[label] >= 0.5 * area:
            continue
        region = labels == label
        if not objects.touches(region, margin):
            far |= region
    return far


@dataclass
class _Registered:
    """The frames against their plate through a camera: the plate (Hc, Wc, 3), each frame's gains (T, 3) and its
    noise level by brightness (T, NOISE_BINS)."""

    camera: Camera
    plate: np.ndarray
    gains: np.ndarray
    noise_curves: np.ndarray

    def relit(self, t: int, height: int, width: int) -> np.ndarray:
        """Frame t's view of the plate, relit by its gains: float32 (H, W, 3) levels."""
        return self.camera.view(self.plate, t, height, width) * self.gains[t].astype(np.float32)

    def noise_map(self, t: int, relit: np.ndarray) -> np.ndarray:
        """Frame t's noise level (levels) at each pixel, by the brightness of its relit plate (H, W)."""
        bins = np.clip((relit.mean(axis=-1) * NOISE_BINS / 256).astype(int), 0, NOISE_BINS - 1)
        return self.noise_curves[t][bins].astype(np.float32)

    def tolerance(self, t: int, relit: np.ndarray, registration_tolerance: float) -> np.ndarray:
        """(H, W) float32 levels by which frame t may differ from its relit view of the plate and still fit: its
        noise, plus a registration error of `registration_tolerance` px across the plate's texture."""
        return self.noise_map(t, relit) + registration_tolerance * _gradient(relit)


def noise_curve(rms: np.ndarray, texture: np.ndarray, brightness: np.ndarray, free: np.ndarray) -> np.ndarray:
    """A frame's noise level (levels per channel) by brightness, (NOISE_BINS,): in each bin of the plate's
    brightness, the median RMS residual of the free pixels where the plate is flattest (texture below its median
    there), so that water or a shadow over less than half of them does not raise it; rising with brightness as
    sensor and path-tracing noise do (a bin of noiseless sky takes the noise of the darker bins), bins without
    enough pixels taking their neighbours'."""
    curve = np.full(NOISE_BINS, np.nan)
    if free.sum() >= MIN_BIN_PIXELS:
        flat = free & (texture <= np.median(texture[free]))
        bins = np.clip((brightness * NOISE_BINS / 256).astype(int), 0, NOISE_BINS - 1)
        for b in range(NOISE_BINS):
            chosen = flat & (bins == b)
            if chosen.sum() >= MIN_BIN_PIXELS:
                curve[b] = float(np.median(rms[chosen])) / RMS_MEDIAN
    if np.isnan(curve).all():
        return np.full(NOISE_BINS, MIN_NOISE)
    first = int(np.flatnonzero(~np.isnan(curve))[0])
    curve[:first] = curve[first]
    curve = np.fmax.accumulate(np.nan_to_num(curve, nan=0.0))
    return np.maximum(curve, MIN_NOISE)


def _register(frames: np.ndarray, camera: Camera, free: np.ndarray) -> _Registered:
    """The plate of the frames through `camera` and, against it, each frame's gains and noise curve."""
    num_frames, height, width = frames.shape[:3]
    plate = registered_median(frames, camera.homographies, camera.canvas_size, exclude=~free,
                              before_first_exclusion=True)
    gains = np.ones((num_frames, 3))
    curves = np.zeros((num_frames, NOISE_BINS))
    for t in range(num_frames):
        view = camera.view(plate, t, height, width)
        gains[t] = fit_gains(frames[t], view, free[t])
        relit = view * gains[t].astype(np.float32)
        difference = frames[t].astype(np.float32) - relit
        curves[t] = noise_curve(np.sqrt((difference * difference).mean(axis=-1)), _gradient(relit), relit.mean(axis=-1),
                                free[t])
    return _Registered(camera, plate, gains, curves)


def realign(frames: np.ndarray, registered: _Registered, usable: np.ndarray) -> tuple[Camera, np.ndarray]:
    """Each frame registered anew onto its relit view of the plate by a dense ECC alignment over its `usable`
    (T, H, W bool) pixels: the camera that does, and how far (px, at the frame's corners) each frame moved."""
    num_frames, height, width = frames.shape[:3]
    corners = frame_corners(width, height)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, REALIGN_ITERATIONS, 1e-5)
    homographies = registered.camera.homographies.copy()
    moved = np.zeros(num_frames)
    for t in range(num_frames):
        if usable[t].sum() < MIN_BIN_PIXELS:
            continue
        view = cv2.cvtColor(np.clip(registered.relit(t, height, width), 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        gray = cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY)
        mask = usable[t].astype(np.uint8) * 255
        try:
            _, warp = cv2.findTransformECCWithMask(view, gray, mask, mask, np.eye(3, dtype=np.float32),
                                                   cv2.MOTION_HOMOGRAPHY, criteria, 3)
        except cv2.error:
            continue
        warp = warp.astype(np.float64) / warp[2, 2]
        mapped = corners @ warp.T
        shift = float(np.linalg.norm(mapped[:, :2] / mapped[:, 2:] - corners[:, :2], axis=1).max())
        if not np.isfinite(shift) or shift > MAX_REALIGNMENT * min(height, width):
            continue
        homographies[t] = homographies[t] @ np.linalg.inv(warp)
        homographies[t] /= homographies[t][2, 2]
        moved[t] = shift
    return Camera(homographies, registered.camera.canvas_size), moved


def _residual_scores(frames: np.ndarray, registered: _Registered, free: np.ndarray, settings: BackgroundFitSettings,
                     sigma: float) -> np.ndarray:
    """Per frame, the residual score alone (T, H, W) float32: what the realignment judges on."""
    residual = np.zeros(frames.shape[:3], np.float32)
    for t in range(len(frames)):
        relit = registered.relit(t, *frames.shape[1:3])
        tolerance = registered.tolerance(t, relit, settings.registration_tolerance)
        residual[t] = local_score(frames[t].astype(np.float32) - relit, tolerance, free[t], sigma)
    return residual


def _scores(frames: np.ndarray, registered: _Registered, free: np.ndarray, settings: BackgroundFitSettings, sigma: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the residual score (as _residual_scores), the relight score, the change score (against the
    neighbouring frame registered onto it), all (T, H, W) float32, where single pixels do not fit (T, H, W) bool,
    and the noise level (T,) at the median pixel."""
    num_frames, height, width = frames.shape[:3]
    camera = registered.camera
    residual = np.zeros((num_frames, height, width), np.float32)
    relight = np.zeros_like(residual)
    change = np.zeros_like(residual)
    pixels = np.zeros(residual.shape, bool)
    noise = np.zeros(num_frames)
    for t in range(num_frames):
        relit = registered.relit(t, height, width)
        noise_map = registered.noise_map(t, relit)
        tolerance = registered.tolerance(t, relit, settings.registration_tolerance)
        frame = frames[t].astype(np.float32)
        difference = frame - relit
        residual[t] = local_score(difference, tolerance, free[t], sigma)
        relight[t] = relight_score(frame, relit, tolerance, free[t], sigma)
        pixels[t] = free[t] & (np.sqrt((difference * difference).mean(axis=-1)) / tolerance
                               > PIXEL_THRESHOLD_SHARE * settings.residual_threshold)
        noise[t] = float(np.median(noise_map[free[t]])) if free[t].any() else MIN_NOISE
        if num_frames < 2:
            continue
        s = t + 1 if t + 1 < num_frames else t - 1
        to_t = camera.frame_to_frame(s, t)
        other = cv2.warpPerspective(frames[s].astype(np.float32), to_t, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) * (registered.gains[t] / registered.gains[s]).astype(np.float32)
        both = free[t] & (cv2.warpPerspective(free[s].astype(np.uint8), to_t, (width, height), flags=cv2.INTER_NEAREST,
                                              borderValue=0) > 0)
        # Two frames' noise: sqrt(2) times one frame's, with the same registration tolerance.
        change[t] = local_score(frame - other, tolerance + (math.sqrt(2) - 1) * noise_map, both, sigma)
    return residual, relight, change, pixels, noise


def _motion(camera: Camera, flow: FlowFields | None, object_masks: list[np.ndarray], free: np.ndarray,
            unfit: np.ndarray, relit: np.ndarray, settings: BackgroundFitSettings, margin: float, sigma: float,
            min_area: float) -> dict:
    """What the flow says of each frame against the camera: the flow noise, the camera's motion (T,), the smoothed
    flow residual (T, H, W), the objects' neighbourhoods and the regions that move on their own (mover, parallax),
    judged on the pixels that do not fit (`unfit`) and those of them a change of light explains (`relit`), both
    (T, H, W) bool."""
    num_frames, height, width = free.shape
    grid = _pixel_grid(height, width)
    flow_noise = 0.0
    if flow is not None:
        medians = []
        for t in range(num_frames - 1):
            residual = flow.forward[t] - camera_flow_between(camera, t, t + 1, grid)
            valid = free[t] & (flow.confidence_forward[t] >= MIN_FLOW_CONFIDENCE)
            if valid.any():
                medians.append(float(np.median(np.linalg.norm(residual[valid], axis=-1))))
        flow_noise = float(np.median(medians)) if medians else 0.0
    threshold = max(settings.flow_threshold, FLOW_NOISE_FACTOR * flow_noise)
    flow_residual = np.zeros((num_frames, height, width), np.float32)
    near = np.zeros((num_frames, height, width), bool)
    mover, parallax = np.zeros_like(near), np.zeros_like(near)
    camera_motion = np.zeros(num_frames)
    for t in range(num_frames):
        if flow is not None and num_frames > 1:
            field, confidence, s = flow.of_frame(t)
        else:
            field, confidence, s = None, None, min(t + 1, num_frames - 1) if t + 1 < num_frames else max(t - 1, 0)
        background_flow = camera_flow_between(camera, t, s, grid)
        camera_motion[t] = float(np.linalg.norm(background_flow, axis=-1).mean())
        objects = _Objects.of_frame([m[t] for m in object_masks], settings.effect_reach, field, background_flow)
        near[t] = objects.near((height, width))
        if field is None:
            continue
        # Flow bleeds past an object's edge by about the smoothing's width: that band is the object's own motion.
        valid = free[t] & (confidence >= MIN_FLOW_CONFIDENCE) & ~objects.near_within((height, width), margin + 2 * sigma)
        own = field - background_flow
        magnitude = np.sqrt(masked_blur(np.linalg.norm(own, axis=-1) ** 2, valid, sigma))
        flow_residual[t] = np.where(free[t], magnitude, 0.0)
        mover[t], parallax[t] = _own_motion(own, magnitude, valid, background_flow, objects, threshold, min_area,
                                            unfit[t], relit[t])
    return {"flow_noise": flow_noise, "camera_motion": camera_motion, "flow_residual": flow_residual, "near": near,
            "mover": _lasting(mover, sigma), "parallax": _lasting(parallax, sigma)}


def fit_background(frames: np.ndarray, camera: Camera, masks: dict[str, np.ndarray], flow: FlowFields | None = None,
                   settings: BackgroundFitSettings = BackgroundFitSettings()) -> BackgroundFit:
    """The fit of uint8 frames (T, H, W, 3) by their registered background; `masks`: per object (T, H, W) bool,
    back to front; `flow`: the flow stage's fields (without them, nothing is found to move on its own).

    The frames are first registered anew onto the plate (realign, on the pixels that fit the given camera), so
    that the maps show what no homography explains; `registration_error` says how far the given homographies
    were from that, per frame.
    """
    num_frames, height, width = frames.shape[:3]
    short = min(height, width)
    object_masks = list(masks.values())
    union = np.zeros((num_frames, height, width), bool)
    for mask in object_masks:
        union |= mask
    margin = max(1, round(settings.mask_margin * short))
    free = ~grow(union, margin)
    sigma = max(1.0, settings.smoothing * short)
    min_area = settings.min_region * height * width
    threshold = settings.residual_threshold

    registered = _register(frames, camera, free)
    realigned, registration_error = camera, np.zeros(num_frames)
    if settings.realign:
        first = _residual_scores(frames, registered, free, settings, sigma)
        realigned, registration_error = realign(frames, registered, free & (first <= threshold))
        registered = _register(frames, realigned, free)
    residual, relight, change, pixels, noise = _scores(frames, registered, free, settings, sigma)
    unfit = free & (residual > threshold)
    relit = unfit & (relight <= threshold)
    motion = _motion(realigned, flow, object_masks, free, unfit, relit, settings, margin, sigma, min_area)
    near, mover, parallax = motion["near"], motion["mover"], motion["parallax"]

    # What a thing moving on its own is carried on into where the flow loses it (beside an object, whose motion the
    # flow bleeds over it): pixels that do not fit, that no change of light explains (not an object's shadow), away
    # from where the flow bleeds past the objects' edges.
    things = unfit & ~relit & ~grow(union, round(margin + 2 * sigma))
    mover = _carried_on(mover, things & ~parallax, sigma)
    parallax = _carried_on(parallax, things & ~mover, sigma)
    quiet = free & ~near & before_objects(near, realigned)
    min_frames = max(3, round(MIN_QUIET_SHARE * num_frames))
    canvas_moving = to_canvas_share(free & (change > threshold), quiet, realigned, min_frames) >= settings.persistence
    canvas_misfit = to_canvas_share(unfit & ~mover & ~parallax, quiet, realigned, min_frames) >= settings.persistence

    radius = max(1, round(sigma))
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    moving = np.zeros_like(unfit)
    misfit = np.zeros_like(unfit)
    for t in range(num_frames):
        # Regions are found on the smoothed scores and drawn at the pixels that do not fit (holes closed).
        drawn = _close(pixels[t], 1)
        # What keeps changing where the canvas says it does, with the whole of each changing region that lies
        # there in good part (a pond's end the objects come near too often to judge on its own).
        changing = _close(unfit[t] | (change[t] > threshold), radius) & free[t]
        moving[t] = _overlapping(changing, _from_canvas(canvas_moving, realigned, t, height, width), min_area)
        # A region moving on its own that lies mostly where the background keeps changing is part of it (ripples
        # the flow follows for a while).
        for own in (mover, parallax):
            own[t] = _outside(own[t], moving[t]) & ~moving[t]
        # A region moving on its own takes the pixels that do not fit on it and right beside it (its blur, the
        # ground it uncovers): the flow's outline is smoothed.
        parallax[t] = unfit[t] & ~moving[t] & (cv2.dilate(parallax[t].astype(np.uint8), kernel) > 0)
        mover[t] = unfit[t] & ~moving[t] & ~parallax[t] & (cv2.dilate(mover[t].astype(np.uint8), kernel) > 0)
        rest = unfit[t] & ~moving[t] & ~mover[t] & ~parallax[t]
        stuck = rest & _from_canvas(canvas_misfit, realigned, t, height, width)
        objects = _Objects.of_frame([m[t] for m in object_masks], settings.effect_reach)
        far = _far_regions(rest, objects, near[t], margin + 2 * sigma, min_area)
        misfit[t] = _close(far | stuck, radius) & rest & drawn
        moving[t] &= _close(pixels[t] | (change[t] > threshold), radius)
        parallax[t] &= drawn
        mover[t] &= drawn
    return BackgroundFit(settings, realigned, registration_error, registered.plate, registered.gains, noise,
                         registered.noise_curves, motion["flow_noise"], motion["camera_motion"], residual, change,
                         motion["flow_residual"], free, near, unfit, moving, mover, parallax, misfit)
