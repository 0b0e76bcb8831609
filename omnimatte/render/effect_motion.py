"""Which object an effect moves with: the test that settles an effect region two objects could own.

Nearness alone misleads where objects crowd: a walker's shadow that runs under a dog's head
touches the dog, not the walker's feet. But an effect moves with what causes it. Following
the region a few frames forward and back, each candidate's own motion (the shift of its
coarse mask's centre) should carry it onto the effect as those frames show it; the candidate
whose motion does so best owns it. The frames' effects are judged as the claim judges them,
on pixels away from the coarse masks, so no network output from other frames is needed.

The same test tells an effect from the background moving by itself: water, or a standing
thing sliding over the ground under parallax, stays where it is on the background (or drifts
by itself), while an effect moves with its object. `stays` carries a region with the camera
alone, as a still part of the background would move, for the claim to compare against.

Something that neither stays put nor moves with the object (a person nobody masked walking
the other way, a pole sliding against the object's direction under parallax) passes both
tests. Its own optical flow gives it away (`own_way`): with the camera's motion taken out, it
moves, and not the object's way. A shadow or a reflection seldom shows flow of its own (the
flow follows the ground's texture under it), and where it does, it goes the object's way.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from omnimatte.render.effect_claim import effect_regions

# Frames away (both ways) at which a region is followed: far enough that objects moving a pixel a
# frame apart have parted, near enough that an effect still keeps its shape.
OFFSETS = (4, 8, 12)
# A frame counts only where at least this share of the moved region lands in it, away from every mask.
MIN_SEEN = 0.3
# A region moves its own way where its flow, the camera's taken out, is faster than OWN_SPEED_FLOOR working pixels
# a frame (or OWN_SPEED_NOISE times the frame's median speed away from the masks, if that is larger: noisy flow),
# and points more than 60 degrees away from its object's (their directions' cosine below OWN_DIRECTION_COSINE),
# or its object is still by the same measure.
OWN_SPEED_FLOOR = 1.0
OWN_SPEED_NOISE = 4.0
OWN_DIRECTION_COSINE = 0.5


class FrameMotion:
    """How a region (H, W) bool of frame t moves: `motion(region, layer)` with layer `layer`'s object
    (EffectMotion.score), `motion.stays(region)` with the camera alone (EffectMotion.stays)."""

    def __init__(self, motion: EffectMotion, t: int):
        self.motion, self.t = motion, t

    def __call__(self, region: np.ndarray, layer: int) -> dict[int, float]:
        return self.motion.score(self.t, region, layer)

    def stays(self, region: np.ndarray) -> dict[int, float]:
        return self.motion.stays(self.t, region)

    def own_way(self, region: np.ndarray, layer: int) -> bool:
        return self.motion.own_way(self.t, region, layer)


class EffectMotion:
    """Where each frame shows effects away from the coarse masks, and where each object's mask is.

    frames: (T, 3, H, W) at the working resolution; masks: (T, L, 1, h, w) coarse masks at any
    resolution; background_at(s): frame s's background (1, 3, H, W); grid: (T, H, W, 2) where each
    pixel of each frame lies on the background's canvas (any fixed coordinates, x then y), None for
    a camera that does not move; flow: (T, 2, h, w) each frame's optical flow to the next with the
    camera's taken out, in its own pixels (x then y), at the masks' resolution, None where not known
    (own_way then finds nothing). A frame's effects are computed when first asked for and kept while
    frames near it are asked about (frames go in order).
    """

    def __init__(self, frames: torch.Tensor, masks: torch.Tensor, background_at: Callable[[int], torch.Tensor],
                 grid: torch.Tensor | None = None, flow: torch.Tensor | None = None):
        self.frames = frames
        self.background_at = background_at
        height, width = frames.shape[-2:]
        self.masks = masks
        self.num_frames = masks.shape[0]
        self.size = (height, width)
        self.centres = _mask_centres(masks, height, width)
        self.grid = None if grid is None else grid.detach().float().cpu().numpy()
        self.flow = None
        if flow is not None:  # in working pixels a frame
            flow_height, flow_width = flow.shape[-2:]
            scale = np.array([width / flow_width, height / flow_height], dtype=np.float32).reshape(1, 2, 1, 1)
            self.flow = flow.detach().float().cpu().numpy() * scale
        self._effects: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @torch.no_grad()
    def _effects_at(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame s's effect pixels and the pixels away from every coarse mask, (H, W) bool each."""
        if s not in self._effects:
            covered = F.interpolate(self.masks[s].float(), size=self.size, mode="bilinear",
                                    align_corners=False).amax(0, keepdim=True)
            free = covered < 0.01
            labels = effect_regions(self.frames[s:s + 1], self.background_at(s), free)
            self._effects[s] = (labels > 0, free[0, 0].cpu().numpy())
        return self._effects[s]

    def scorer(self, t: int) -> FrameMotion:
        """For frame t: how a region (H, W) bool moves (FrameMotion)."""
        for s in [s for s in self._effects if abs(s - t) > max(OFFSETS)]:
            del self._effects[s]
        return FrameMotion(self, t)

    def score(self, t: int, region: np.ndarray, layer: int) -> dict[int, float]:
        """Per frame s OFFSETS away from t: the share of the region, moved as layer `layer` moves from
        frame t to s, that lands on s's effects. Frames where the layer's mask is missing or touches
        the picture's edge (its centre no longer moves with it) or that show too little of the moved
        region are left out."""
        return self._landing(t, region, lambda s: self.centres[s, layer] - self.centres[t, layer])

    def stays(self, t: int, region: np.ndarray) -> dict[int, float]:
        """Per frame s OFFSETS away from t: the share of the region, carried by the camera alone from frame t to
        s (a still part of the background, where its centre lies on the canvas), that lands on s's effects;
        frames that show too little of the carried region are left out."""
        ys, xs = np.nonzero(region)
        centre = np.array([ys.mean(), xs.mean()])
        return self._landing(t, region, lambda s: self._camera_shift(t, s, centre))

    def own_way(self, t: int, region: np.ndarray, layer: int) -> bool:
        """Whether `region` (H, W) bool of frame t moves its own way (OWN_SPEED_FLOOR and the constants after it):
        the median of its flow, the camera's taken out, against the median over layer `layer`'s coarse mask. The
        last frame is judged by the flow of the one before (its own comes from the backward flow). False without
        flow, where the region is too small to show at the flow's resolution or the object's mask is empty."""
        if self.flow is None or self.num_frames < 2:
            return False
        s = min(t, self.num_frames - 2)
        flow = self.flow[s]
        size = tuple(flow.shape[-2:])
        shown = F.interpolate(torch.from_numpy(region.astype(np.float32))[None, None], size=size,
                              mode="area")[0, 0].numpy() > 0.5
        masks = F.interpolate(self.masks[s].float().cpu(), size=size, mode="bilinear", align_corners=False)[:, 0] > 0.5
        masks = masks.numpy()
        if not shown.any() or not masks[layer].any():
            return False
        away = ~masks.any(0)
        noise = float(np.median(np.linalg.norm(flow[:, away], axis=0))) if away.any() else 0.0
        floor = max(OWN_SPEED_FLOOR, OWN_SPEED_NOISE * noise)
        own, its_object = np.median(flow[:, shown], axis=1), np.median(flow[:, masks[layer]], axis=1)
        speed, object_speed = float(np.linalg.norm(own)), float(np.linalg.norm(its_object))
        if speed <= floor:
            return False
        return object_speed <= floor or float(own @ its_object) / (speed * object_speed) < OWN_DIRECTION_COSINE

    def _camera_shift(self, t: int, s: int, centre: np.ndarray) -> np.ndarray:
        """(dy, dx): where the background point at `centre` (y, x) of frame t is in frame s, less `centre`."""
        if self.grid is None:
            return np.zeros(2)
        height, width = self.size

        def position(frame: int, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """The canvas position (x, y) at `point` of `frame` and its change per pixel (2 x 2: d/dy, d/dx)."""
            y = int(np.clip(np.rint(point[0]), 0, height - 2))
            x = int(np.clip(np.rint(point[1]), 0, width - 2))
            here = self.grid[frame, y, x]
            slope = np.stack([self.grid[frame, y + 1, x] - here, self.grid[frame, y, x + 1] - here], 1)
            return here + slope @ (point - (y, x)), slope

        target, _ = position(t, centre)
        point = centre.astype(np.float64)
        for _ in range(3):  # Newton steps on the locally affine homography
            here, slope = position(s, point)
            point = point + np.linalg.lstsq(slope, target - here, rcond=None)[0]
        return point - centre

    def _landing(self, t: int, region: np.ndarray, shift_to: Callable[[int], np.ndarray]) -> dict[int, float]:
        """Per frame s OFFSETS away from t, the share of the region, moved by shift_to(s) (dy, dx; NaN: not
        known), that lands on s's effects, among frames that show at least MIN_SEEN of it away from the masks."""
        height, width = self.size
        ys, xs = np.nonzero(region)
        shares = {}
        for offset in OFFSETS:
            for s in (t - offset, t + offset):
                if not 0 <= s < self.num_frames:
                    continue
                shift = shift_to(s)
                if np.isnan(shift).any():
                    continue
                move_y, move_x = np.rint(shift).astype(int)  # the region moves whole
                moved_y, moved_x = ys + move_y, xs + move_x
                inside = (moved_y >= 0) & (moved_y < height) & (moved_x >= 0) & (moved_x < width)
                effects, free = self._effects_at(s)
                seen = np.zeros_like(inside)
                seen[inside] = free[moved_y[inside], moved_x[inside]]
                if seen.sum() < max(1, MIN_SEEN * len(ys)):
                    continue
                shares[s] = float(effects[moved_y[seen], moved_x[seen]].mean())
        return shares


def _mask_centres(masks: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(T, L, 2) each coarse mask's centre (y, x) in working-resolution pixels; NaN where a mask is
    empty or touches the picture's edge (part of the object is outside, so the centre lags it)."""
    weights = (masks[:, :, 0] > 0.5).float()
    h, w = weights.shape[-2:]
    ys = (torch.arange(h, dtype=torch.float32, device=masks.device) + 0.5) * height / h - 0.5
    xs = (torch.arange(w, dtype=torch.float32, device=masks.device) + 0.5) * width / w - 0.5
    area = weights.sum((-2, -1))
    edge = torch.stack([weights[..., 0, :].amax(-1), weights[..., -1, :].amax(-1),
                        weights[..., :, 0].amax(-1), weights[..., :, -1].amax(-1)]).amax(0)
    centre_y = (weights * ys[:, None]).sum((-2, -1)) / area.clamp_min(1)
    centre_x = (weights * xs[None, :]).sum((-2, -1)) / area.clamp_min(1)
    centres = torch.stack((centre_y, centre_x), -1)
    known = ((area > 0) & (edge == 0))[..., None]
    return torch.where(known, centres, torch.full_like(centres, float("nan"))).cpu().numpy()
