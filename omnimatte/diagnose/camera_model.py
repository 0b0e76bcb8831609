"""Check 1, the camera model: does one homography per frame explain the background outside the masks?

Three figures:

* unexplained: per frame, the share of the free background (outside every grown mask) that the
  registered, relit background does not explain and no object's effect accounts for
  (background_fit: parallax and misfit), graded in the quarter of the frames where it is largest.
  Regions that move on their own along the camera's motion are parallax: standing things nearer
  or further than the ground, whose own motion grows with the camera's (the message gives it as a
  share of the camera's motion, steady from frame to frame);
* drift: frames far apart registered directly (ORB matches outside the masks, RANSAC, then a
  dense ECC polish) against the chained homographies, in px at the frame's corners;
* misregistration: how far each frame moves when aligned anew onto the background the frames
  share (background_fit's realignment), in px at its corners: what blurs the background;
* distortion: the pattern the flow leaves once the homographies' own motion is taken out, fitted
  with a lens's radial distortion and with a rolling shutter's row-by-row shift, in px at the
  frame's edge; each is told apart from the other by which fits;
* unregistered: the share of the frames the homography stage could register neither by features
  nor by dense alignment and placed by a neighbour's motion instead (canvas.json's fallback_frames);
* fallback_fit: how far the worst of those placements falls short of aligning its frame onto the
  one before as well as the registered pairs do (canvas.json's fallback_correlation against
  registered_correlation, normalised correlations of the grey levels).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

from omnimatte.background_fit import MIN_CAMERA_MOTION, MIN_FLOW_CONFIDENCE, BackgroundFit, camera_flow_between
from omnimatte.diagnose.findings import CheckResult, Finding, percent, worst_frames
from omnimatte.diagnose.inputs import SampleInputs
from omnimatte.diagnose.settings import CameraModelSettings

CHECK = "camera_model"
TITLE = "camera model"
#: The share of the frames (the worst ones) on which the unexplained share is graded.
WORST_QUARTER = 75
#: Frames registered directly must overlap by at least this share of the frame.
MIN_OVERLAP = 0.5
#: At most this many pairs of frames are registered directly, in each of up to three spans.
PAIRS_PER_SPAN = 4
ORB_FEATURES = 3000
RATIO_TEST = 0.8
RANSAC_PX = 2.0
MIN_MATCHES = 20
#: The flow is fitted on every this many pixels, in each direction.
FLOW_STEP = 8
#: Pairs of frames whose camera moves the background by less than this many px say nothing of a lens.
MIN_MOTION_FOR_DISTORTION = 1.0


def unexplained_share(fit: BackgroundFit) -> np.ndarray:
    """Per frame, the share of the free background that parallax and misfit cover."""
    free = np.maximum(fit.free.sum(axis=(1, 2)), 1)
    return (fit.parallax | fit.misfit).sum(axis=(1, 2)) / free


def _corners(width: int, height: int) -> np.ndarray:
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = np.c_[points, np.ones(len(points))] @ matrix.T
    return mapped[:, :2] / mapped[:, 2:]


def overlap(matrix: np.ndarray, width: int, height: int) -> float:
    """The share of a frame that another frame covers, given the map from the other's pixels to this one's."""
    outline = _apply(matrix, _corners(width, height)).astype(np.float32)
    frame = _corners(width, height).astype(np.float32)
    area, _ = cv2.intersectConvexConvex(outline, frame)
    return float(area) / (width * height)


def register_directly(a: np.ndarray, b: np.ndarray, usable_a: np.ndarray, usable_b: np.ndarray) -> np.ndarray | None:
    """The homography from frame b's pixels to frame a's, found from the two frames alone on their usable (H, W
    bool) pixels: ORB matches and RANSAC, then ECC polishing from there (kept only if it still fits the RANSAC
    inliers); None where too few features match."""
    gray_a, gray_b = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    mask_a, mask_b = usable_a.astype(np.uint8) * 255, usable_b.astype(np.uint8) * 255
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES, fastThreshold=10)
    keys_a, desc_a = orb.detectAndCompute(gray_a, mask_a)
    keys_b, desc_b = orb.detectAndCompute(gray_b, mask_b)
    if desc_a is None or desc_b is None or len(keys_a) < MIN_MATCHES or len(keys_b) < MIN_MATCHES:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(desc_b, desc_a, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < RATIO_TEST * m[1].distance]
    if len(good) < MIN_MATCHES:
        return None
    source = np.float32([keys_b[m.queryIdx].pt for m in good])
    target = np.float32([keys_a[m.trainIdx].pt for m in good])
    matrix, inliers = cv2.findHomography(source, target, cv2.RANSAC, RANSAC_PX, maxIters=5000, confidence=0.999)
    if matrix is None or int(inliers.sum()) < MIN_MATCHES:
        return None
    matrix = matrix / matrix[2, 2]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-6)
    polished = matrix.astype(np.float32)
    try:
        for blur in (5, 1):
            _, polished = cv2.findTransformECCWithMask(gray_b, gray_a, mask_b, mask_a, polished,
                                                       cv2.MOTION_HOMOGRAPHY, criteria, blur)
    except cv2.error:
        return matrix
    polished = polished.astype(np.float64) / polished[2, 2]
    kept = inliers.ravel().astype(bool)
    moved = np.median(np.linalg.norm(_apply(polished, source[kept]) - target[kept], axis=1))
    return polished if np.isfinite(polished).all() and moved <= RANSAC_PX else matrix


def misalignment(a: np.ndarray, b: np.ndarray, matrix: np.ndarray, usable: np.ndarray) -> float:
    """The median grey-level difference between frame a and frame b laid onto it by `matrix` (b's pixels to a's),
    over a's usable pixels that b covers."""
    height, width = a.shape[:2]
    gray_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    laid = cv2.warpPerspective(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float32), matrix, (width, height),
                               flags=cv2.INTER_LINEAR, borderValue=-1)
    inside = usable & (laid >= 0)
    return float(np.median(np.abs(gray_a - laid)[inside])) if inside.any() else float("inf")


def drift(inputs: SampleInputs, fit: BackgroundFit) -> tuple[float, list[tuple[int, int, float]]]:
    """The largest corner distance (px) between the chained and the direct registration of frames far apart,
    and each pair measured (a, b, px)."""
    count = inputs.num_frames
    height, width = inputs.shape
    usable = fit.free & ~fit.unfit
    pairs: list[tuple[int, int]] = []
    for span in sorted({count - 1, (count - 1) // 2, (count - 1) // 4}, reverse=True):
        if span < 2:
            continue
        starts = np.unique(np.linspace(0, count - 1 - span, min(PAIRS_PER_SPAN, count - span)).round().astype(int))
        pairs += [(int(a), int(a) + span) for a in starts
                  if overlap(inputs.camera.frame_to_frame(int(a) + span, int(a)), width, height) >= MIN_OVERLAP]
    measured = []
    for a, b in pairs:
        chained = inputs.camera.frame_to_frame(b, a)
        direct = register_directly(inputs.frames[a], inputs.frames[b], usable[a], usable[b])
        if direct is None:
            continue
        corners = _corners(width, height)
        distance = float(np.linalg.norm(_apply(chained, corners) - _apply(direct, corners), axis=1).max())
        # Drift counts only where the direct registration lays frame b onto frame a better than the chain does;
        # elsewhere the direct one is what failed.
        if misalignment(inputs.frames[a], inputs.frames[b], direct, usable[a]) >= misalignment(
                inputs.frames[a], inputs.frames[b], chained, usable[a]):
            distance = 0.0
        measured.append((a, b, distance))
    return (max((d for _, _, d in measured), default=float("nan")), measured)


def _normalised_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    ys, xs = np.mgrid[0:height:FLOW_STEP, 0:width:FLOW_STEP].astype(np.float64)
    scale = math.hypot(width, height) / 2
    return (xs - (width - 1) / 2) / scale, (ys - (height - 1) / 2) / scale, scale


def _fit(basis: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares of values (N,) on basis (N, K), refitted without the points three MADs out; (coefficients,
    residual sum of squares)."""
    coefficients = np.linalg.lstsq(basis, values, rcond=None)[0]
    error = values - basis @ coefficients
    spread = 1.4826 * np.median(np.abs(error - np.median(error))) + 1e-9
    kept = np.abs(error) <= 3 * spread
    if kept.sum() > basis.shape[1] * 4:
        coefficients = np.linalg.lstsq(basis[kept], values[kept], rcond=None)[0]
    error = values - basis @ coefficients
    return coefficients, float((error[kept] ** 2).sum())


def distortion(inputs: SampleInputs, fit: BackgroundFit) -> dict[str, float]:
    """The lens's and the rolling shutter's patterns in the flow the homographies leave: for each, the median
    over moving pairs of its fitted field's largest size at the frame's edge (px), and the share of the flow
    residual each explains beyond what a change of homography would."""
    if inputs.flow is None:
        return {"lens_px": float("nan"), "rolling_shutter_px": float("nan"), "lens_explains": 0.0,
                "rolling_shutter_explains": 0.0, "lens_sign": 0.0}
    height, width = inputs.shape
    u, v, scale = _normalised_grid(height, width)
    u, v = u.ravel(), v.ravel()
    ys, xs = np.mgrid[0:height:FLOW_STEP, 0:width:FLOW_STEP].astype(np.float64)
    grid = np.stack([xs, ys, np.ones_like(xs)], -1)
    lens, rows, lens_gain, rows_gain, signs = [], [], [], [], []
    edge = height / 2 / scale  # the top and bottom rows, in the fit's units
    for t in range(inputs.num_frames - 1):
        if fit.camera_motion[t] < MIN_MOTION_FOR_DISTORTION:
            continue
        flow, confidence, s = inputs.flow.of_frame(t)
        camera = camera_flow_between(fit.camera, t, s, grid).reshape(-1, 2)
        usable = (fit.free[t] & (confidence >= MIN_FLOW_CONFIDENCE) & ~fit.unexplainable(t) & ~fit.unfit[t])
        usable = usable[::FLOW_STEP, ::FLOW_STEP].ravel()
        if usable.sum() < 200:
            continue
        residual = flow[::FLOW_STEP, ::FLOW_STEP].reshape(-1, 2)[usable] - camera[usable]
        c = camera[usable]
        pu, pv = u[usable], v[usable]
        one, zero = np.ones_like(pu), np.zeros_like(pu)
        # A homography's change, to first order: an affine map and the two perspective terms.
        base = np.concatenate([np.stack([one, pu, pv, zero, zero, zero, pu * pu, pu * pv], 1),
                               np.stack([zero, zero, zero, one, pu, pv, pu * pv, pv * pv], 1)])
        values = np.concatenate([residual[:, 0], residual[:, 1]])
        _, base_error = _fit(base, values)
        # A lens's radial distortion p (1 + k r^2) seen through the camera's motion c: k (r^2 c + 2 p (p . c)).
        r2, dot = pu * pu + pv * pv, pu * c[:, 0] + pv * c[:, 1]
        radial = np.concatenate([r2 * c[:, 0] + 2 * pu * dot, r2 * c[:, 1] + 2 * pv * dot])
        k = _fit(np.c_[base, radial], values)
        # A rolling shutter's wobble: each row shifted by its own amount, beyond the homography's shear.
        row_terms = np.concatenate([np.stack([pv ** 2, pv ** 3, zero, zero], 1), np.stack([zero, zero, pv ** 2, pv ** 3], 1)])
        w = _fit(np.c_[base, row_terms], values)
        speed = float(np.linalg.norm(c, axis=1).mean())
        lens.append(abs(k[0][-1]) * 3 * speed)  # at the frame's corner (r = 1), the field is about 3 k |c|
        signs.append(np.sign(k[0][-1]))
        a, b, cy, dy = w[0][-4:]
        rows.append(max(math.hypot(a * e ** 2 + b * e ** 3, cy * e ** 2 + dy * e ** 3) for e in (-edge, edge)))
        lens_gain.append(1 - k[1] / max(base_error, 1e-9))
        rows_gain.append(1 - w[1] / max(base_error, 1e-9))
    if not lens:
        return {"lens_px": float("nan"), "rolling_shutter_px": float("nan"), "lens_explains": 0.0,
                "rolling_shutter_explains": 0.0, "lens_sign": 0.0}
    return {"lens_px": float(np.median(lens)), "rolling_shutter_px": float(np.median(rows)),
            "lens_explains": float(np.median(lens_gain)), "rolling_shutter_explains": float(np.median(rows_gain)),
            "lens_sign": float(np.sign(np.median(signs)))}


def parallax_rate(fit: BackgroundFit) -> tuple[float, float]:
    """How the parallax regions move against the ground, frame by frame, as a share of the camera's own motion:
    the median over the frames that have some, and its spread (median absolute deviation over the median; nan
    with fewer than three such frames or a still camera). Parallax keeps a steady share: the nearer or further
    a standing thing, the larger its share, but frame after frame the same."""
    rates = [float(fit.flow_residual[t][fit.parallax[t]].mean()) / fit.camera_motion[t]
             for t in range(fit.num_frames) if fit.parallax[t].any() and fit.camera_motion[t] >= MIN_CAMERA_MOTION]
    if len(rates) < 3:
        return float("nan"), float("nan")
    rate = float(np.median(rates))
    return rate, float(np.median(np.abs(np.array(rates) - rate))) / max(rate, 1e-9)


def check_camera_model(inputs: SampleInputs, fit: BackgroundFit, settings: CameraModelSettings) -> CheckResult:
    share = unexplained_share(fit)
    graded = float(np.percentile(share, WORST_QUARTER))
    parallax = float((fit.parallax.sum() / max((fit.parallax | fit.misfit).sum(), 1)))
    rate, spread = parallax_rate(fit)
    if parallax >= 0.5:
        cause = (f"most of it ({percent(parallax)}) moves on its own along the camera's motion: standing things "
                 "nearer or further than the ground slide over it as the camera translates (parallax)")
        if np.isfinite(rate):
            cause += (f"; they move against the ground by {rate:.2f} times the camera's own motion, frame after frame "
                      f"(varying by {percent(spread)})")
        fix = ("No homography explains them, so a layer will take them up: mask each standing thing as an object of "
               "its own, film from a tripod or with a pan that rotates about the lens, or shorten the clip to where the "
               "camera does not translate.")
    else:
        cause = ("it does not move on its own: the registration or the lens leaves the background misaligned there "
                 "(see drift and distortion)")
        fix = ("A layer will take up the misaligned background: check the masks cover every moving thing, so that "
               "registration uses the static background only, and see the drift and distortion figures.")
    findings = [Finding(
        CHECK, "unexplained", graded, "share of the background", settings.unexplained_warn, settings.unexplained_fail,
        f"In a quarter of the frames the homographies leave at least {percent(graded)} of the background outside the "
        f"masks unexplained (largest {percent(float(share.max()))}, frame {int(share.argmax())}).",
        f"Of what is unexplained, {cause}. {fix}", frames=worst_frames(share))]

    largest, pairs = drift(inputs, fit)
    worst_pair = max(pairs, key=lambda p: p[2]) if pairs else None
    measured = (f"Frames registered directly against the chained homographies: {len(pairs)} pairs, at most "
                f"{largest:.2f} px apart at the frame's corners"
                + (f" (frames {worst_pair[0]} and {worst_pair[1]})." if worst_pair else "."))
    if not pairs:
        measured = "No pair of frames far apart could be registered directly (too few features), so drift is not measured."
    findings.append(Finding(
        CHECK, "drift", largest, "px", settings.drift_warn, settings.drift_fail, measured,
        "The chained registration drifts: the background is registered to itself out of place, so its texture "
        "blurs and a layer takes up the difference. Register against the canvas or reference frames (a still camera "
        "should come out exactly still), or shorten the clip.",
        frames=[worst_pair[0], worst_pair[1]] if worst_pair else []))
    error = fit.registration_error
    findings.append(Finding(
        CHECK, "misregistration", float(error.max()), "px", settings.misregistration_warn,
        settings.misregistration_fail,
        f"Aligned anew onto the background they share, the frames move by up to {error.max():.2f} px at their corners "
        f"(frame {int(error.argmax())}; median {np.median(error):.2f} px).",
        "The homographies put these frames out of line with the background the others show: it blurs there, and a "
        "layer takes up the difference. Things that move or stand apart from the ground (see above) pull the "
        "registration off: mask them, so that the homography stage matches the ground only.",
        frames=worst_frames(error)))

    patterns = distortion(inputs, fit)
    kind = "barrel" if patterns["lens_sign"] < 0 else "pincushion"
    findings.append(Finding(
        CHECK, "lens_distortion", patterns["lens_px"], "px", settings.distortion_warn, settings.distortion_fail,
        f"A lens's radial distortion fits the flow the homographies leave with {patterns['lens_px']:.2f} px at the "
        f"frame's corners (it explains {percent(max(patterns['lens_explains'], 0.0))} of that flow).",
        f"The lens bends straight lines ({kind}): a homography cannot follow the background near the frame's edges as "
        "the camera moves, and layers take up the difference there. Undistort the video first (the camera's profile, "
        "or a lens-correction filter).", frames=[]))
    findings.append(Finding(
        CHECK, "rolling_shutter", patterns["rolling_shutter_px"], "px", settings.distortion_warn, settings.distortion_fail,
        f"A rolling shutter's row-by-row shift fits that flow with {patterns['rolling_shutter_px']:.2f} px at the "
        f"frame's edge (it explains {percent(max(patterns['rolling_shutter_explains'], 0.0))} of it).",
        "The rows of a frame were exposed at different times while the camera shook, so the frame wobbles in a way no "
        "homography follows. Stabilise with a rolling-shutter correction first, or use a steadier shot.", frames=[]))
    findings.append(unregistered(inputs, settings))
    findings.append(fallback_fit(inputs, settings))
    return CheckResult(CHECK, TITLE, findings, {"unexplained": share, "registration_error": fit.registration_error},
                       fit.parallax | fit.misfit)


def first_ten(items: Iterable[str]) -> str:
    """Up to ten items joined by commas, and " ..." after them where there were more."""
    items = list(items)
    return ", ".join(items[:10]) + (" ..." if len(items) > 10 else "")


def unregistered(inputs: SampleInputs, settings: CameraModelSettings) -> Finding:
    """The finding on the frames the homography stage placed by a neighbour's motion (and, said, the pairs it
    registered by dense alignment alone)."""
    placed = sorted(inputs.fallback_frames)
    dense = (f" {len(inputs.dense_pairs)} pair(s) of frames had too few features and were registered by dense "
             "alignment of the background alone." if inputs.dense_pairs else "")
    listed = first_ten(map(str, placed))
    measured = (f"{len(placed)} of {inputs.num_frames} frames could not be registered and were placed by a "
                f"neighbour's motion (frames {listed}).{dense}" if placed
                else f"Every frame was registered.{dense}")
    return Finding(
        CHECK, "unregistered", len(placed) / inputs.num_frames, "share of the frames", settings.unregistered_warn,
        settings.unregistered_fail, measured,
        "A neighbour's motion stands in for theirs (how well it fits: the fallback_fit finding): where the camera's "
        "motion changes there, their background is out of place and a layer takes up the difference. See why each "
        "failed in the homography stage's "
        "log and where they land in previews/stabilised.mp4 (outlined red, FALLBACK); mask what moves, or "
        "trim the frames with too little background to match (frames.start, frames.end).", frames=placed)


def fallback_fit(inputs: SampleInputs, settings: CameraModelSettings) -> Finding:
    """The finding on how well a neighbour's motion fits the frames it places: the largest shortfall of such a
    frame's alignment onto the frame before (its correlation) below the registered pairs' median; not a number
    where no placement could be measured against them."""
    fits = dict(zip(inputs.fallback_frames, inputs.fallback_correlation))
    registered = inputs.registered_correlation
    measured = {t: fit for t, fit in fits.items() if fit is not None}
    unchecked = sorted(t for t, fit in fits.items() if fit is None)
    if not fits:
        message = "No frame was placed by a neighbour's motion."
    elif registered is None:
        message = ("The frames placed by a neighbour's motion cannot be compared with the registered pairs: no "
                   "registered pair shares enough texture to correlate.")
    else:
        worst_first = sorted(measured, key=measured.get)
        listed = first_ten(f"frame {t} to {measured[t]:.2f}" for t in worst_first)
        message = ("" if not measured else
                   f"A neighbour's motion aligns {listed} onto the frame "
                   f"before, where the registered pairs reach a median of {registered:.2f} (normalised correlation "
                   "of the grey levels).")
    if unchecked and fits:
        named = first_ten(map(str, unchecked))
        message += (f" Frame {named} shares" if len(unchecked) == 1 else f" Frames {named} share") + (
            " too little texture with the frame before for the placement to be checked.")
    shortfall = {t: registered - fit for t, fit in measured.items()} if registered is not None else {}
    figure = max(shortfall.values()) if shortfall else float("nan") if fits else 0.0
    return Finding(
        CHECK, "fallback_fit", figure, "correlation below the registered pairs'", settings.fallback_fit_warn,
        settings.fallback_fit_fail, message.strip(),
        "The motion that places these frames does not line their background up with the frame before: they are out "
        "of place on the canvas, their background is wrong there and a layer takes up the difference (a cut, a "
        "flash or a frame the camera jolted). Trim them (frames.start, frames.end), or mask what moves so that the "
        "homography stage can register them.",
        frames=sorted(shortfall, key=shortfall.get, reverse=True))
