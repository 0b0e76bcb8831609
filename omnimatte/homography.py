"""Camera motion as homographies from every frame into one background canvas.

Omnimatte models the background as a single static image (the "canvas") that each
frame sees through its own homography; whatever the homographies cannot explain must
be explained by an object's layer. So the homographies have to follow the *background*
only: ORB features inside the object masks are ignored, consecutive frames are matched
and registered with RANSAC, each estimate is polished by dense ECC alignment over the
background pixels, and the relative motions are chained into frame 0's coordinates,
then shifted so the canvas starts at (0, 0). A pair with too few features (low texture,
a plain wall) is registered by dense alignment of the background alone where it matches
the frames well (homography.dense_min_correlation) and a second registration across it
and a neighbour agrees; pairs that still cannot be registered take a neighbour's motion
(logged, and marked FALLBACK in the stabilised preview).

Outputs in `out_dir` (the contract's `homography/` folder):
    homographies.npy   (T, 3, 3) float64, frame pixel (x, y, 1) -> canvas pixel
    canvas.json        canvas size and per-pair registration diagnostics
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from omnimatte.camera import frame_corners, translation
from omnimatte.contract import HomographyFiles
from omnimatte.errors import StageError
from omnimatte.frames import UPSCALE_WARNING
from omnimatte.imaging import draw_label
from omnimatte.io import (
    frame_name,
    list_frames,
    read_frames,
    save_json,
    save_npy,
    write_video,
)
from omnimatte.logs import get_logger
from omnimatte.threads import opencv_pool

STAGE = "homography"
log = get_logger(STAGE)

#: Canvas sides are rounded up to this, so the network's down/up-sampling fits exactly.
CANVAS_MULTIPLE = 16
#: Lowe's ratio test threshold: a match must be clearly better than the runner-up.
RATIO_TEST = 0.8
#: A relative homography between neighbouring frames may not change the area more than this.
MAX_AREA_CHANGE = 2.0
#: How much the perspective divisor may vary over the frame between neighbouring frames.
MAX_PERSPECTIVE = 0.2
#: Gaussian filter sizes of the successive ECC refinement passes (1 = no blur).
ECC_BLUR_STAGES = (5, 1)
#: When an ECC pass stops: after 100 iterations or a change of the correlation below 1e-6.
ECC_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-6)
#: After ECC has aligned the background, pixels whose local residual is more than this many times the median
#: residual of the aligned pixels (a standing thing sliding by under parallax, an unmasked mover, water) are left
#: out and ECC runs again from there, so that they do not pull the background's alignment towards their motion.
ECC_OUTLIER_FACTOR = 3.0
#: Grey levels below which a local residual is never an outlier (interpolation error over fine texture).
ECC_OUTLIER_FLOOR = 4.0
#: A run of failed pairs spanning at most this many frames is bridged by matching its ends directly.
MAX_BRIDGE_SPAN = 5
#: A frame is registered directly to the last keyframe while, by the chained motion, at least this share of it
#: lies in the keyframe's view; beyond that the frame before it becomes the next keyframe.
KEYFRAME_OVERLAP = 0.6
#: The preview is downscaled so its longer canvas side is at most this.
PREVIEW_MAX_SIDE = 1024
PREVIEW_BAR = 24  # height of the label strip above the preview canvas
FALLBACK_COLOUR = (255, 40, 40)  # RGB of a frame placed by a neighbour's motion in the preview
DENSE_COLOUR = (40, 160, 255)  # RGB of a frame whose pair dense alignment alone registered


@dataclass
class PairResult:
    """Registration of frame b onto frame a: `matrix` maps b's pixels to a's (None when it failed)."""

    matrix: np.ndarray | None
    inliers: int
    reason: str = ""
    correlation: float = 0.0  # ECC correlation after refinement; 0 when not refined
    dense: bool = False  # registered by dense alignment alone, the features having failed (`reason` says why)

    @property
    def implausible(self) -> bool:
        """Whether the features gave a motion no camera makes (rather than too few features to give one)."""
        return self.reason.startswith("the homography")


# ----------------------------------------------------------------------------- input


def _read_inputs(sample: str, frames_dir: Path, masks_dir: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames (T,H,W,3) and the union of object masks (T,H,W) bool, or None without masks."""
    frames_dir = Path(frames_dir)
    if not frames_dir.is_dir() or not list_frames(frames_dir):
        raise StageError(STAGE, sample, f"no PNG frames in {frames_dir}", "run the frames stage first, or check the frames path")
    try:
        frames = read_frames(frames_dir, "rgb")
    except (OSError, ValueError) as exc:  # unreadable file, or frames of different sizes
        raise StageError(
            STAGE, sample, f"cannot read the frames in {frames_dir}: {exc}", "re-extract the frames; all must be readable PNGs of one size"
        ) from exc
    if masks_dir is None:
        return frames, None

    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise StageError(
            STAGE, sample, f"mask folder {masks_dir} does not exist", "run the masks stage first, or pass no masks to register whole frames"
        )
    objects = sorted(p for p in masks_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not objects:
        log.warning("%s: no object folders in %s; registering whole frames", sample, masks_dir)
        return frames, None
    union = np.zeros(frames.shape[:3], dtype=bool)
    for folder in objects:
        try:
            masks = read_frames(folder, "gray")
        except (OSError, ValueError) as exc:
            raise StageError(
                STAGE, sample, f"cannot read the masks in {folder}: {exc}", "regenerate the masks: one readable uint8 PNG per frame"
            ) from exc
        if masks.shape != frames.shape[:3]:
            raise StageError(
                STAGE, sample,
                f"masks of '{folder.name}' are {masks.shape[0]} x {masks.shape[2]}x{masks.shape[1]} but the frames are "
                f"{frames.shape[0]} x {frames.shape[2]}x{frames.shape[1]} (count x width x height)",
                "regenerate the masks from the current frames (same count and resolution)",
            )
        union |= masks > 127
    return frames, union


def _usable_regions(object_masks: np.ndarray | None, shape: tuple[int, int, int], dilation: int) -> list[np.ndarray | None]:
    """Per-frame ORB detection masks (255 = background, usable): object union grown by `dilation` px.

    Dilation keeps features on the object's blurry edge, and its shadow's nearest part, out.
    """
    if object_masks is None:
        return [None] * shape[0]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1)) if dilation > 0 else None
    regions = []
    for mask in object_masks:
        grown = mask.astype(np.uint8) * 255
        if kernel is not None:
            grown = cv2.dilate(grown, kernel)
        regions.append(255 - grown)
    return regions


# ----------------------------------------------------------------------------- registration


@dataclass
class FrameFeatures:
    """What registration needs of one frame: grey image, usable region, ORB keypoints and descriptors."""

    gray: np.ndarray
    region: np.ndarray | None
    points: np.ndarray  # (N, 2) float32 pixel positions
    descriptors: np.ndarray | None


def _detect(frames: np.ndarray, regions: list[np.ndarray | None], n_features: int) -> list[FrameFeatures]:
    """ORB keypoints (outside the object masks) of every frame."""
    orb = cv2.ORB_create(nfeatures=n_features, fastThreshold=10)
    features = []
    for frame, region in zip(frames, regions):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        keypoints, descriptors = orb.detectAndCompute(gray, region)
        points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
        features.append(FrameFeatures(gray, region, points, descriptors))
    return features


def _degeneracy(matrix: np.ndarray, width: int, height: int) -> str:
    """Why a frame-to-neighbour homography is implausible, or '' when it looks like camera motion."""
    if not np.all(np.isfinite(matrix)) or abs(matrix[2, 2]) < 1e-12:
        return "the homography is not finite"
    matrix = matrix / matrix[2, 2]
    det = float(np.linalg.det(matrix[:2, :2]))
    if not (1.0 / MAX_AREA_CHANGE < det < MAX_AREA_CHANGE):
        return f"the homography is degenerate (area change {det:.2f})"
    if abs(matrix[2, 0]) * width + abs(matrix[2, 1]) * height > MAX_PERSPECTIVE:
        return "the homography has implausibly strong perspective"
    corners = frame_corners(width, height)
    mapped = corners @ matrix.T
    if np.any(mapped[:, 2] <= 0):
        return "the homography maps the frame behind the camera"
    quad = mapped[:, :2] / mapped[:, 2:]
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not np.all(turns > 0):  # the frame's corners go clockwise in image coordinates (y down)
        return "the homography flips or folds the frame"
    return ""


def _align_densely(a: FrameFeatures, b: FrameFeatures, start: np.ndarray) -> tuple[np.ndarray | None, float]:
    """b->a by dense ECC alignment over the background pixels from `start` (3x3): (matrix, correlation), or (None, 0)
    where its first stage does not converge (or OpenCV refuses the frames, e.g. a blank one) or gives no finite warp.

    Blurred first (wider basin of convergence), then unblurred: blur in pixel units is not zoom-invariant and biases
    the scale by ~0.1 px a pair, which chaining adds up. Then once more without the pixels the first alignment leaves
    unexplained (_misaligned), so that a standing thing under parallax or an unmasked mover does not pull it."""
    full = np.full(a.gray.shape, 255, dtype=np.uint8)
    template_mask = full if b.region is None else b.region
    input_mask = full if a.region is None else a.region
    aligned, correlation = start.astype(np.float32), 0.0
    for blur in ECC_BLUR_STAGES:
        result = _ecc(a, b, template_mask, input_mask, aligned, blur)
        if result is None:  # the stages before stand
            break
        correlation, aligned = result
    matrix = _normalised(aligned) if correlation != 0.0 else None
    if matrix is None:
        return None, 0.0
    outliers = _misaligned(a.gray, b.gray, matrix, input_mask)
    if outliers.any():
        # Where the second alignment fails, the first stands.
        result = _ecc(a, b, template_mask, np.where(outliers, 0, input_mask).astype(np.uint8),
                      matrix.astype(np.float32), 1)
        again = _normalised(result[1]) if result is not None and result[0] > 0 else None
        if again is not None:
            matrix, correlation = again, result[0]
    return matrix, float(correlation)


def _refine_ecc(
    a: FrameFeatures, b: FrameFeatures, matrix: np.ndarray, src: np.ndarray, dst: np.ndarray, tolerance: float
) -> tuple[np.ndarray, float]:
    """Polish b->a with dense ECC alignment over the background pixels (_align_densely); returns (matrix, correlation).

    ORB keypoints are only good to about a pixel, which an 8-parameter homography
    extrapolates to several pixels at the frame corners, and chaining adds these up;
    ECC uses every background pixel and lands within a tenth of a pixel. It only
    refines: a result that does not converge, or that moves the RANSAC inliers `src`
    further than `tolerance` px (median) from their matches `dst`, is discarded
    (correlation 0). Inliers, not frame corners, are the test because the corners are
    exactly where a poorly spread feature set makes the RANSAC estimate unreliable.
    """
    refined, correlation = _align_densely(a, b, matrix)
    if refined is None:
        return matrix, 0.0
    mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), refined).reshape(-1, 2)
    if np.median(np.linalg.norm(mapped - dst, axis=1)) > tolerance:
        return matrix, 0.0
    return refined, correlation


def _ecc(a: FrameFeatures, b: FrameFeatures, template_mask: np.ndarray, input_mask: np.ndarray, start: np.ndarray,
         blur: int) -> tuple[float, np.ndarray] | None:
    """One ECC alignment of frame b onto frame a from `start` (float32 3x3), over the masks' pixels, after a Gaussian
    blur of size `blur`: (correlation, warp), or None where OpenCV gives up. ECC's warp maps template (b) pixels to
    input (a) pixels: the b->a homography."""
    try:
        return cv2.findTransformECCWithMask(b.gray, a.gray, template_mask, input_mask, start, cv2.MOTION_HOMOGRAPHY,
                                            ECC_CRITERIA, blur)
    except cv2.error:
        return None


def _normalised(warp: np.ndarray) -> np.ndarray | None:
    """An ECC warp as a float64 homography with H[2, 2] = 1, or None where it is not finite or degenerate."""
    warp = warp.astype(np.float64)
    if not np.all(np.isfinite(warp)) or abs(warp[2, 2]) < 1e-12:
        return None
    return warp / warp[2, 2]


def _misaligned(gray_a: np.ndarray, gray_b: np.ndarray, matrix: np.ndarray, region_a: np.ndarray) -> np.ndarray:
    """(H, W) bool in frame a: background pixels that frame b, aligned by `matrix` (b -> a), does not explain: a
    local residual above ECC_OUTLIER_FACTOR times the median over the aligned background (and ECC_OUTLIER_FLOOR),
    grown by a few pixels."""
    height, width = gray_a.shape
    laid = cv2.warpPerspective(gray_b.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)
    seen = cv2.warpPerspective(np.ones_like(gray_b, np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST)
    valid = (seen > 0) & (region_a > 0)
    if valid.sum() < 0.25 * valid.size:
        return np.zeros_like(valid)
    residual = cv2.GaussianBlur(np.abs(gray_a.astype(np.float32) - laid), (9, 9), 0)
    threshold = max(ECC_OUTLIER_FACTOR * float(np.median(residual[valid])), ECC_OUTLIER_FLOOR)
    outliers = ((residual > threshold) & valid).astype(np.uint8)
    return cv2.dilate(outliers, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))).astype(bool)


def _register(
    a: FrameFeatures,
    b: FrameFeatures,
    ransac_threshold: float,
    min_inliers: int,
    refine: bool,
) -> PairResult:
    """Homography mapping frame b's pixels onto frame a's: ORB matches, RANSAC, then ECC refinement."""
    points_a, desc_a = a.points, a.descriptors
    points_b, desc_b = b.points, b.descriptors
    size = (a.gray.shape[1], a.gray.shape[0])
    if desc_a is None or desc_b is None or len(desc_a) < 2 or len(desc_b) < 2:
        found = min(len(points_a), len(points_b))
        return PairResult(None, 0, f"only {found} features found")
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = [m[0] for m in matcher.knnMatch(desc_b, desc_a, k=2) if len(m) == 2 and m[0].distance < RATIO_TEST * m[1].distance]
    if len(good) < min_inliers:
        return PairResult(None, 0, f"only {len(good)} feature matches (need {min_inliers})")
    src = points_b[[m.queryIdx for m in good]]
    dst = points_a[[m.trainIdx for m in good]]
    # OpenCV refines the RANSAC model on all its inliers (Levenberg-Marquardt) before returning.
    matrix, inlier_mask = cv2.findHomography(src, dst, cv2.RANSAC, ransac_threshold, maxIters=5000, confidence=0.999)
    if matrix is None:
        return PairResult(None, 0, "RANSAC found no homography")
    inliers = int(inlier_mask.sum())
    if inliers < min_inliers:
        return PairResult(None, inliers, f"only {inliers} RANSAC inliers (need {min_inliers})")
    problem = _degeneracy(matrix, *size)
    if problem:
        return PairResult(None, inliers, problem)
    matrix = matrix / matrix[2, 2]
    correlation = 0.0
    if refine:
        inside = inlier_mask.ravel().astype(bool)
        matrix, correlation = _refine_ecc(a, b, matrix, src[inside], dst[inside], tolerance=ransac_threshold)
        problem = _degeneracy(matrix, *size)
        if problem:
            return PairResult(None, inliers, problem)
    return PairResult(matrix, inliers, correlation=correlation)


def _corners_apart(first: np.ndarray, second: np.ndarray, width: int, height: int) -> float:
    """How far apart (px) two homographies put the frame's corners: the largest difference in either axis."""
    corners = frame_corners(width, height)[:, :2].reshape(-1, 1, 2)
    return float(np.abs(cv2.perspectiveTransform(corners, first) - cv2.perspectiveTransform(corners, second)).max())


def _best_dense(a: FrameFeatures, b: FrameFeatures, starts: list[np.ndarray]) -> tuple[np.ndarray | None, float]:
    """b->a by dense alignment (_align_densely) from each start; the plausible result (_degeneracy) with the highest
    correlation, or (None, 0)."""
    height, width = a.gray.shape
    best: tuple[np.ndarray | None, float] = (None, 0.0)
    for start in starts:
        matrix, correlation = _align_densely(a, b, start)
        if matrix is not None and not _degeneracy(matrix, width, height) and correlation > best[1]:
            best = (matrix, correlation)
    return best


def _register_densely(features: list[FrameFeatures], results: list[PairResult], ransac_threshold: float,
                      min_correlation: float) -> None:
    """Register the pairs that had too few features by dense alignment of the background (ECC, started from no
    motion and from the nearest registered pair's motion), in place, where the checks hold.

    Low texture, noise and a plain wall leave too few features, but ECC uses every background pixel. (Where the
    features gave an implausible motion, something that is no background holds them: a pole under parallax, an
    unmasked mover; those pairs are left failed.) On a frame whose background is noise ECC converges anyway, to a
    motion that fits the noise, or near no motion at all (on a dark, noisy floor under a pan, half the pairs), so a
    dense registration is only taken where it matches the frames to an ECC correlation of at least `min_correlation`
    (below it noise, not texture, is aligned; or another scene, at a cut) and a second registration bears it out:
    the pair's motion chained with the next pair's (or the previous one's) must put the corners of the frame two
    apart within the RANSAC threshold times the square root of two (two links' errors; in either axis) of where a
    dense registration across both puts them, started twice that far from the chain's motion in both axes (ECC that
    finds nothing to align stays where it starts, so it must pull back to the chain). The neighbour's motion in the
    chain is its registration or, where it too had too few features, its dense alignment whether or not that passed
    its own checks: the two agreeing with a registration across both is evidence for both. A pair for which no such
    check holds (in a clip of two frames, none can) stays failed, its reason saying why."""
    failed = [t for t, result in enumerate(results) if result.matrix is None and not result.implausible]
    if not failed:
        return
    height, width = features[0].gray.shape
    identity = np.eye(3)
    tolerance = ransac_threshold * math.sqrt(2)  # two links' errors

    def starts(t: int) -> list[np.ndarray]:
        """Where pair t's dense alignment starts: no motion, and the nearest registered pair's motion."""
        source = _nearest_success(t, results)
        return [identity] if source is None else [identity, results[source].matrix]

    with opencv_pool() as pool:
        candidates = dict(zip(failed, pool.map(lambda t: _best_dense(features[t], features[t + 1], starts(t)),
                                                failed)))

    def motion(k: int) -> np.ndarray | None:
        """Pair k's motion: its registration, else its dense candidate (None: neither)."""
        if not 0 <= k < len(results):
            return None
        return results[k].matrix if results[k].matrix is not None else candidates.get(k, (None, 0.0))[0]

    def check(t: int) -> str:
        """'' where pair t's dense candidate matches its frames well enough and agrees with a direct registration
        across it and a neighbour, else why not."""
        matrix, correlation = candidates[t]
        if matrix is None:
            return "dense alignment did not converge"
        if correlation < min_correlation:
            return (f"dense alignment matched it too poorly to trust (ECC correlation {correlation:.2f}, under "
                    f"homography.dense_min_correlation {min_correlation:.2f})")
        disagreements = []
        for first, chained in ((t, None if motion(t + 1) is None else matrix @ motion(t + 1)),
                               (t - 1, None if motion(t - 1) is None else motion(t - 1) @ matrix)):
            if chained is None:
                continue
            # Where ECC finds nothing to align it stays where it started: started from the chain's motion it would
            # agree with it by itself, so it starts displaced from it, twice the tolerance away in both axes.
            start = translation(2 * tolerance, 2 * tolerance) @ chained
            direct, _ = _best_dense(features[first], features[first + 2], [start])
            if direct is None:
                continue
            apart = _corners_apart(chained, direct, width, height)
            if apart <= tolerance:
                return ""
            disagreements.append(f"{first}->{first + 2} {apart:.1f} px")
        if not disagreements:
            return "dense alignment found no neighbouring pair to check it against"
        return "dense alignment disagrees with the direct registration of " + ", ".join(disagreements)

    with opencv_pool() as pool:
        problems = dict(zip(failed, pool.map(check, failed)))
    for t in failed:
        if problems[t]:
            results[t].reason = f"{results[t].reason}; {problems[t]}"
        else:
            results[t] = PairResult(candidates[t][0], 0, results[t].reason, candidates[t][1], dense=True)


def _alignment_correlation(a: FrameFeatures, b: FrameFeatures, matrix: np.ndarray) -> float | None:
    """How well `matrix` (b -> a) aligns frame b onto frame a: the normalised correlation of their grey levels over the
    background both show; None where they share less than a quarter of the frame or one of them is flat there."""
    height, width = a.gray.shape
    laid = cv2.warpPerspective(b.gray.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)
    region_b = np.full(b.gray.shape, 255, np.uint8) if b.region is None else b.region
    valid = cv2.warpPerspective(region_b, matrix, (width, height), flags=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((3, 3), np.uint8)) > 0  # not where the warp blends in the outside
    if a.region is not None:
        valid &= a.region > 0
    if valid.sum() < 0.25 * valid.size:
        return None
    x, y = a.gray[valid].astype(np.float64), laid[valid].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    norm = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / norm) if norm > 1e-9 else None


def _fallback_fits(features: list[FrameFeatures], chained: np.ndarray, results: list[PairResult],
                   frames: list[int]) -> tuple[dict[int, float | None], float | None]:
    """How well the motion each of `frames` was placed by (a neighbour's) aligns it onto the frame before
    (_alignment_correlation; None: cannot be told), and the median of the same over the registered pairs: what a
    motion that fits reaches in this clip (None, and nothing measured, without such frames)."""
    if not frames:
        return {}, None

    def placed(t: int) -> np.ndarray:  # frame t -> frame t - 1, as the homographies place them
        return np.linalg.solve(chained[t - 1], chained[t])

    fits = {t: _alignment_correlation(features[t - 1], features[t], placed(t)) for t in frames}
    registered = [_alignment_correlation(features[t], features[t + 1], placed(t + 1))
                  for t, result in enumerate(results) if result.matrix is not None]
    registered = [value for value in registered if value is not None]
    return fits, (float(np.median(registered)) if registered else None)


def _registration_failure(sample: str, results: list[PairResult], failed: list[int], max_failed_fraction: float,
                          upscale: float) -> StageError:
    """The stage's error when too many pairs failed, headed by what the listed reasons have in common."""
    implausible = [t for t in failed if results[t].implausible]
    featureless = [t for t in failed if t not in implausible]
    if not implausible:
        headline = "frames have too few features to register (nor does a dense alignment hold)"
        fix = ("the clip may lack texture or be dominated by the moving object; check the masks (a mask covering most "
               "of the frame leaves nothing to match), lower min_inliers, or raise max_failed_fraction")
    elif not featureless:
        headline = "the motion found between frames is not a plausible camera motion"
        fix = ("the matched features may sit on moving things or on blur; check the masks cover every moving object, "
               "or raise max_failed_fraction")
    else:
        headline = (f"frames cannot be registered: {len(featureless)} pair(s) with too few features (nor a dense "
                    f"alignment that holds), {len(implausible)} with implausible camera motion")
        fix = ("check the masks cover every moving object and leave background to match; lower min_inliers, "
               "or raise max_failed_fraction")
    if upscale > UPSCALE_WARNING:
        fix = (f"the frames are the source upscaled {upscale:.1f}x, which adds blur, not detail: set frames.width "
               f"near the source video's width; also {fix}")
    examples = "; ".join(f"{t}->{t + 1}: {results[t].reason}" for t in (featureless[:2] + implausible[:2])[:3])
    return StageError(STAGE, sample, f"{headline}: {len(failed)} of {len(results)} pairs failed "
                      f"(more than {max_failed_fraction:.0%} allowed), e.g. {examples}", fix)


def _failed_runs(failed: list[int]) -> list[tuple[int, int]]:
    """Group sorted failed pair indices into runs (first, last) of consecutive pairs."""
    runs: list[tuple[int, int]] = []
    for t in failed:
        if runs and runs[-1][1] == t - 1:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def _nearest_success(t: int, results: list[PairResult]) -> int | None:
    """Index of the successful pair closest to pair t (the earlier one on ties)."""
    for distance in range(1, len(results)):
        for k in (t - distance, t + distance):
            if 0 <= k < len(results) and results[k].matrix is not None:
                return k
    return None


def _overlap(to_reference_a: np.ndarray, to_reference_b: np.ndarray, width: int, height: int) -> float:
    """The share of frame b's area that lies inside frame a, by their homographies into one reference."""
    b_to_a = np.linalg.solve(to_reference_a, to_reference_b)
    mapped = frame_corners(width, height) @ b_to_a.T
    if np.any(mapped[:, 2] <= 1e-9):
        return 0.0
    quad = (mapped[:, :2] / mapped[:, 2:]).astype(np.float32)
    frame = frame_corners(width, height)[:, :2].astype(np.float32)
    inside, _ = cv2.intersectConvexConvex(quad, frame)
    area = abs(cv2.contourArea(quad))
    return float(inside) / area if area > 0 else 0.0


def _keyframes(chained: np.ndarray, width: int, height: int) -> list[int]:
    """Per frame, the keyframe it is registered to (frame 0: itself). Frame 0 is the first keyframe; a frame is
    registered to the last keyframe while KEYFRAME_OVERLAP of it lies in that keyframe's view, and the frame before
    the first one that does not becomes the next keyframe (registered to the one before it)."""
    anchors, key = [0], 0
    for t in range(1, len(chained)):
        if t - 1 > key and _overlap(chained[key], chained[t], width, height) < KEYFRAME_OVERLAP:
            key = t - 1
        anchors.append(key)
    return anchors


def _anchor_to_keyframes(sample: str, features: list[FrameFeatures], chained: np.ndarray, ransac_threshold: float,
                         min_inliers: int, refine: bool, dense_pairs: set[int],
                         dense_min_correlation: float) -> tuple[np.ndarray, list[int], set[int]]:
    """Frame->reference homographies in which each frame is registered directly to a keyframe, so that the error
    of chaining grows with the keyframes passed (few over a pan, none for a still camera) rather than with every
    frame. A direct registration (features, RANSAC and ECC, as for a pair; dense alignment alone, checked, where the
    features are too few and the chain between the two holds one of the `dense_pairs`) replaces the chained step
    where it agrees with the chain to within the RANSAC threshold times the square root of the links between the two
    frames (the chain's error grows about so, one independent error a pair): a repeating texture matched a period off
    is never taken. Elsewhere the frame follows the previous one as the chain does (its pair's motion, a bridge or a
    neighbour's motion). Returns the homographies, each frame's keyframe and the frames placed directly."""
    height, width = features[0].gray.shape
    anchors = _keyframes(chained, width, height)
    distant = [t for t in range(1, len(chained)) if anchors[t] != t - 1]

    def register_to_keyframe(t: int) -> np.ndarray | None:
        """Frame t -> its keyframe by features or, where they are too few and dense alignment registered some pair
        between the two, by dense alignment: from the chain's motion and from a start displaced from it by twice the
        RANSAC threshold in both axes, taken only where both match to at least `dense_min_correlation` and land
        within the threshold of each other (ECC that finds nothing to align stays where it starts)."""
        result = _register(features[anchors[t]], features[t], ransac_threshold, min_inliers, refine)
        if result.matrix is not None or result.implausible or not dense_pairs & set(range(anchors[t], t)):
            return result.matrix
        by_chain = np.linalg.solve(chained[anchors[t]], chained[t])
        found = [_best_dense(features[anchors[t]], features[t], [start])
                 for start in (by_chain, translation(2 * ransac_threshold, 2 * ransac_threshold) @ by_chain)]
        if any(matrix is None or correlation < dense_min_correlation for matrix, correlation in found):
            return None
        if _corners_apart(found[0][0], found[1][0], width, height) > ransac_threshold:
            return None
        return found[0][0]

    with opencv_pool() as pool:
        direct = dict(zip(distant, pool.map(register_to_keyframe, distant)))
    anchored = chained.copy()
    placed: set[int] = set()
    for t in range(1, len(chained)):
        key = anchors[t]
        anchored[t] = anchored[t - 1] @ np.linalg.solve(chained[t - 1], chained[t])
        matrix = direct.get(t)
        if matrix is not None:
            by_chain = np.linalg.solve(anchored[key], anchored[t])  # frame t -> keyframe, through the chain
            if _corners_apart(matrix, by_chain, width, height) <= ransac_threshold * math.sqrt(t - key):
                anchored[t] = anchored[key] @ matrix
                placed.add(t)
        anchored[t] /= anchored[t, 2, 2]
    keys = sorted(set(anchors))
    log.info("%s: %d keyframe(s) (%s); %d of %d other frames registered directly to theirs", sample, len(keys),
             ", ".join(map(str, keys[:8])) + (" ..." if len(keys) > 8 else ""), len(placed), len(distant))
    return anchored, anchors, placed


# ----------------------------------------------------------------------------- canvas


def _round_up(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def _fit_canvas(
    sample: str, chained: np.ndarray, width: int, height: int, max_canvas_scale: float
) -> tuple[np.ndarray, int, int, list[float]]:
    """Shift the chained homographies so every warped frame lies in a canvas starting at (0, 0)."""
    mapped = np.einsum("tij,kj->tki", chained, frame_corners(width, height))
    if np.any(mapped[..., 2] <= 1e-6):
        bad = sorted(set(np.nonzero(mapped[..., 2] <= 1e-6)[0].tolist()))
        raise StageError(
            STAGE, sample,
            f"the chained homographies degenerate (frames {bad[:5]} map beyond the horizon)",
            "the estimated camera motion drifted; check the object masks and the failed pairs in the log",
        )
    xy = mapped[..., :2] / mapped[..., 2:]
    low = np.floor(xy.reshape(-1, 2).min(axis=0))
    high = xy.reshape(-1, 2).max(axis=0)
    canvas_w = _round_up(high[0] - low[0], CANVAS_MULTIPLE)
    canvas_h = _round_up(high[1] - low[1], CANVAS_MULTIPLE)
    ratio = canvas_w * canvas_h / (width * height)
    if ratio > max_canvas_scale:
        raise StageError(
            STAGE, sample,
            f"the background canvas would be {canvas_w}x{canvas_h}, {ratio:.1f}x the frame area "
            f"(limit {max_canvas_scale:g}x); the homographies probably drift",
            "check the object masks and the failed pairs in the log; for a genuinely long pan raise max_canvas_scale",
        )
    offset = translation(-low[0], -low[1])
    homographies = np.einsum("ij,tjk->tik", offset, chained)
    homographies /= homographies[:, 2:3, 2:3]
    return homographies, canvas_w, canvas_h, [float(-low[0]), float(-low[1])]


# ----------------------------------------------------------------------------- preview


def render_preview(
    frames: np.ndarray, homographies: np.ndarray, info: dict, sample: str = "", max_side: int = PREVIEW_MAX_SIDE
) -> Iterator[np.ndarray]:
    """Stabilised preview frames: each frame warped into the canvas over a faint mean of the earlier ones.

    A static background should stand still here; wobble or a jump shows a bad homography. A frame placed by a
    neighbour's motion is outlined in red and marked FALLBACK, one whose pair was registered by dense alignment alone
    in blue and marked DENSE.
    """
    scale = min(1.0, max_side / max(info["width"], info["height"]))
    size = (max(1, round(info["width"] * scale)), max(1, round(info["height"] * scale)))
    to_preview = np.diag([scale, scale, 1.0])
    fallback = set(info.get("fallback_frames", []))
    dense = {t + 1 for t in info.get("dense_pairs", [])}
    corners = frame_corners(info["frame_width"], info["frame_height"])
    total = np.zeros((size[1], size[0], 3), dtype=np.float32)
    count = np.zeros((size[1], size[0], 1), dtype=np.float32)
    ones = np.full(frames.shape[1:3], 255, dtype=np.uint8)
    for t, frame in enumerate(frames):
        matrix = to_preview @ homographies[t]
        warped = cv2.warpPerspective(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        valid = cv2.warpPerspective(ones, matrix, size, flags=cv2.INTER_NEAREST)[..., None] > 0
        mean = np.where(count > 0, total / np.maximum(count, 1), 0)
        canvas = np.where(count > 0, 24 + 0.35 * mean, 24).astype(np.float32)
        canvas = np.where(valid, warped, canvas).astype(np.uint8)
        total += np.where(valid, warped, 0)
        count += valid

        outline = corners @ matrix.T
        outline = np.round(outline[:, :2] / outline[:, 2:]).astype(np.int32)
        colour = FALLBACK_COLOUR if t in fallback else DENSE_COLOUR if t in dense else (255, 220, 0)
        cv2.polylines(canvas, [outline], isClosed=True, color=colour, thickness=2, lineType=cv2.LINE_AA)

        bar = np.full((PREVIEW_BAR, size[0], 3), 16, dtype=np.uint8)
        text_w = draw_label(bar, f"{sample} frame {t:05d}".strip(), (6, 17), 0.5, colour=(235, 235, 235), box=None)
        if t in fallback or t in dense:
            draw_label(bar, "FALLBACK" if t in fallback else "DENSE", (16 + text_w, 17), 0.5, colour=colour,
                       thickness=2, box=None)
        yield np.concatenate([bar, canvas], axis=0)


# ----------------------------------------------------------------------------- stage


def estimate_homographies(
    sample: str,
    frames: np.ndarray,
    object_masks: np.ndarray | None = None,
    n_features: int = 3000,
    ransac_threshold: float = 2.0,
    min_inliers: int = 15,
    max_failed_fraction: float = 0.5,
    mask_dilation: int = 15,
    max_canvas_scale: float = 4.0,
    refine: bool = True,
    dense_min_correlation: float = 0.8,
    upscale: float = 1.0,
) -> tuple[np.ndarray, dict]:
    """Frame->canvas homographies (T,3,3) and canvas info for in-memory frames; see run_homography.

    `upscale` (working width over source width) only words the failure: upscaled frames hold little detail.
    """
    num_frames, height, width = frames.shape[:3]
    regions = _usable_regions(object_masks, frames.shape[:3], mask_dilation)
    features = _detect(frames, regions, n_features)
    with opencv_pool() as pool:  # the pairs are independent: one each at a time on every CPU the stage may use
        results = list(pool.map(lambda t: _register(features[t], features[t + 1], ransac_threshold, min_inliers, refine),
                                range(num_frames - 1)))
    _register_densely(features, results, ransac_threshold, dense_min_correlation)
    dense_pairs = [t for t, r in enumerate(results) if r.dense]
    for t, r in enumerate(results):
        log.debug("%s: pair %d->%d: %d inliers, ECC %.3f %s", sample, t, t + 1, r.inliers, r.correlation, r.reason)
        if r.dense:
            log.info("%s: pair %d->%d registered by dense alignment of the background (%s; ECC correlation %.3f, "
                     "checked against its neighbours)", sample, t, t + 1, r.reason, r.correlation)

    failed = [t for t, r in enumerate(results) if r.matrix is None]
    if results and len(failed) > max_failed_fraction * len(results):
        raise _registration_failure(sample, results, failed, max_failed_fraction, upscale)

    # A run of failed pairs (e.g. around one blank frame) is bridged by registering its
    # end frames directly, so the frames after it do not inherit the guessed motion.
    bridges: dict[int, tuple[int, np.ndarray]] = {}
    fallback_frames: set[int] = set()
    for first, last in _failed_runs(failed):
        start, end = first, last + 1
        bridge = None
        if 2 <= end - start <= MAX_BRIDGE_SPAN:
            bridge = _register(features[start], features[end], ransac_threshold, min_inliers, refine).matrix
        if bridge is not None:
            bridges[end] = (start, bridge)
            log.info("%s: registered frame %d directly to frame %d across the failed pairs", sample, end, start)
        fallback_frames.update(range(start + 1, end if bridge is not None else end + 1))

    relative = []
    substitutes: dict[int, str] = {}  # frame -> what stands in for its failed pair's motion
    for t, result in enumerate(results):
        if result.matrix is not None:
            relative.append(result.matrix)
            continue
        source = _nearest_success(t, results)
        relative.append(np.eye(3) if source is None else results[source].matrix)
        if t + 1 in bridges:
            substitutes[t + 1] = f"a direct registration to frame {bridges[t + 1][0]}"
        elif source is None:
            substitutes[t + 1] = "no motion (identity)"
        else:
            substitutes[t + 1] = f"the motion of pair {source}->{source + 1}"

    chained = np.empty((num_frames, 3, 3), dtype=np.float64)
    chained[0] = np.eye(3)  # frame 0 is the reference
    for t in range(1, num_frames):
        if t in bridges:
            start, bridge = bridges[t]
            chained[t] = chained[start] @ bridge
        else:
            chained[t] = chained[t - 1] @ relative[t - 1]
        chained[t] /= chained[t, 2, 2]

    chained, anchors, placed = _anchor_to_keyframes(sample, features, chained, ransac_threshold, min_inliers, refine,
                                                    set(dense_pairs), dense_min_correlation)
    fallback_frames -= placed
    fits, registered_fit = _fallback_fits(features, chained, results, sorted(fallback_frames))
    # Said once the keyframes are known: a frame registered directly to its keyframe does not keep the stand-in.
    for frame, used in substitutes.items():
        pair = f"registration {frame - 1}->{frame} failed: {results[frame - 1].reason}"
        if frame in placed:
            log.info("%s: frame %d (%s): %s; placed by registering it directly to keyframe %d", sample, frame,
                     frame_name(frame), pair, anchors[frame])
            continue
        fit = ""
        if frame in fits:
            fit = (", which cannot be checked (the frames share too little texture to correlate)" if fits[frame] is None
                   else f", which aligns it onto frame {frame - 1} to a correlation of {fits[frame]:.2f}"
                   + ("" if registered_fit is None else f" (the registered pairs: median {registered_fit:.2f})"))
        log.warning("%s: frame %d (%s): %s; using %s%s", sample, frame, frame_name(frame), pair, used, fit)
    homographies, canvas_w, canvas_h, offset = _fit_canvas(sample, chained, width, height, max_canvas_scale)
    info = {
        "width": canvas_w,
        "height": canvas_h,
        "frame_width": width,
        "frame_height": height,
        "num_frames": num_frames,
        "reference_frame": 0,
        "offset": offset,
        "failed_pairs": failed,
        "dense_pairs": dense_pairs,
        "keyframes": sorted(set(anchors)),
        "direct_frames": sorted(placed),
        "fallback_frames": sorted(fallback_frames),
        "fallback_correlation": [None if fits[t] is None else round(fits[t], 4) for t in sorted(fallback_frames)],
        "registered_correlation": None if registered_fit is None else round(registered_fit, 4),
        "bridged": [[start, end] for end, (start, _) in sorted(bridges.items())],
        "inliers": [r.inliers if r.matrix is not None else 0 for r in results],
        "correlation": [round(r.correlation, 4) for r in results],
    }
    return homographies, info


def run_homography(
    sample: str,
    frames_dir: Path,
    masks_dir: Path | None,
    out_dir: Path,
    preview_path: Path,
    n_features: int = 3000,
    ransac_threshold: float = 2.0,
    min_inliers: int = 15,
    max_failed_fraction: float = 0.5,
    mask_dilation: int = 15,
    max_canvas_scale: float = 4.0,
    fps: float = 24.0,
    refine: bool = True,
    dense_min_correlation: float = 0.8,
    upscale: float = 1.0,
) -> dict:
    """Estimate the homographies of a frame folder, write them and the stabilised preview; return canvas info.

    canvas.json: width/height of the canvas (multiples of 16), frame size and count,
    reference_frame (0), offset (canvas position of frame 0's origin), failed_pairs
    (t for each failed pair t->t+1), dense_pairs (t for each pair t->t+1 registered by
    dense alignment alone), keyframes, direct_frames (frames registered directly to their
    keyframe), fallback_frames (frames placed by a neighbour's motion), fallback_correlation (per
    fallback frame, how well its placement aligns it onto the frame before: normalised
    correlation of the grey levels, null where that cannot be told), registered_correlation
    (the median of the same over the registered pairs), bridged ([start,
    end] gaps registered directly, by features), and per pair t->t+1 the RANSAC inliers
    (0 for a dense pair) and the ECC correlation after refinement or, for a dense pair, of
    its dense alignment (0 = not refined).
    `refine` turns the dense ECC refinement of each pair off (faster, ~1-5 px less exact).
    `dense_min_correlation`: the least ECC correlation at which a pair with too few features is registered by dense
    alignment alone (_register_densely).
    `upscale`: the working width over the source's, named in the error when registration fails.
    """
    frames, object_masks = _read_inputs(sample, Path(frames_dir), masks_dir)
    masked = "outside the object masks" if object_masks is not None else "(no object masks)"
    log.info("%s: registering %d frames of %dx%d %s", sample, len(frames), frames.shape[2], frames.shape[1], masked)
    homographies, info = estimate_homographies(
        sample, frames, object_masks, n_features, ransac_threshold, min_inliers, max_failed_fraction, mask_dilation,
        max_canvas_scale, refine, dense_min_correlation, upscale,
    )
    files = HomographyFiles(Path(out_dir))
    save_npy(files.homographies, homographies)
    save_json(files.canvas, info)
    write_video(preview_path, render_preview(frames, homographies, info, sample), fps)
    log.info(
        "%s: canvas %dx%d, %d of %d pairs failed, median inliers %d",
        sample, info["width"], info["height"], len(info["failed_pairs"]), max(len(frames) - 1, 0),
        int(np.median(info["inliers"])) if info["inliers"] else 0,
    )
    return info
