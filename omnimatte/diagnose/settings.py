"""The diagnose stage's settings: the config's `diagnose:` section, one dataclass per check family.

Each figure a check grades has two thresholds, `*_warn` and `*_fail`; the defaults here are the
config's (config/config.yaml, workflow/schemas/config.schema.yaml). Thresholds that depend on the
footage are not here: the residual is measured in units of each frame's own noise, and motion
in units of the flow's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from omnimatte.background_fit import BackgroundFitSettings


@dataclass(frozen=True)
class BackgroundSettings:
    """How the registered background's fit is measured (omnimatte/background_fit.py), shared by checks 1, 2 and 5 and by the render stage's effect claim."""

    residual_threshold: float = 3.0
    registration_tolerance: float = 0.5
    flow_threshold: float = 0.5
    effect_reach: float = 2.0
    persistence: float = 0.5
    min_region: float = 0.002

    def fit_settings(self) -> BackgroundFitSettings:
        return BackgroundFitSettings(residual_threshold=self.residual_threshold,
                                     registration_tolerance=self.registration_tolerance,
                                     flow_threshold=self.flow_threshold, effect_reach=self.effect_reach,
                                     persistence=self.persistence, min_region=self.min_region)


@dataclass(frozen=True)
class CameraModelSettings:
    """Check 1. unexplained: the share of the free background the camera model does not explain, in the frames
    where it shows most (a quarter of them); drift: px at the frame's corners between the chained homographies
    and a direct registration of frames far apart; misregistration: px a frame moves at its corners when aligned
    anew onto the background the frames share; distortion: px of a lens's or a rolling shutter's pattern
    in the flow the homographies leave; unregistered: the share of the frames the homography stage could not register
    and placed by a neighbour's motion; fallback_fit: how far the worst such placement's alignment onto the frame
    before falls short of the registered pairs' median (normalised correlation)."""

    unexplained_warn: float = 0.02
    unexplained_fail: float = 0.08
    drift_warn: float = 5.0
    drift_fail: float = 10.0
    misregistration_warn: float = 2.0
    misregistration_fail: float = 5.0
    distortion_warn: float = 0.5
    distortion_fail: float = 1.5
    unregistered_warn: float = 0.01
    unregistered_fail: float = 0.2
    fallback_fit_warn: float = 0.05
    fallback_fit_fail: float = 0.2


@dataclass(frozen=True)
class MovingBackgroundSettings:
    """Check 2: the share of the free background that moves by itself, in the frames where it shows most."""

    share_warn: float = 0.02
    share_fail: float = 0.08


@dataclass(frozen=True)
class ExposureSettings:
    """Check 3: the largest change of the background's brightness (relative, against the clip's median) and of
    its white balance (the largest channel's relative change of its share), and the largest change from one
    frame to the next (flicker)."""

    brightness_warn: float = 0.1
    brightness_fail: float = 0.25
    white_balance_warn: float = 0.05
    white_balance_fail: float = 0.15
    flicker_warn: float = 0.05
    flicker_fail: float = 0.15


@dataclass(frozen=True)
class MaskSettings:
    """Check 4: per object, the largest relative change of the mask's area from one frame to the next; the share
    of the mask that the flow does not carry to the next frame's; the share of frames in which the mask touches
    the frame's edge; the largest share of the frame the mask covers."""

    area_jump_warn: float = 0.4
    area_jump_fail: float = 0.8
    flow_disagreement_warn: float = 0.3
    flow_disagreement_fail: float = 0.6
    edge_warn: float = 0.5
    edge_fail: float = 1.01
    cover_warn: float = 0.5
    cover_fail: float = 0.8


@dataclass(frozen=True)
class LayerSettings:
    """Check 5: per layer, alpha beyond its object's reach over the alpha inside its mask (leak); its mean alpha
    inside its mask (collapse, graded downwards) and the largest share of the frame it holds (fill); the share
    of a layer's alpha another layer also claims outside both masks (overlap); the share of the background's
    unexplained region a layer holds; the share of the frame the reconstruction misses where no layer is."""

    leak_warn: float = 0.05
    leak_fail: float = 0.2
    collapse_warn: float = 0.5
    collapse_fail: float = 0.1
    fill_warn: float = 0.6
    fill_fail: float = 0.9
    overlap_warn: float = 0.1
    overlap_fail: float = 0.3
    absorbed_warn: float = 0.3
    absorbed_fail: float = 0.6
    missed_warn: float = 0.01
    missed_fail: float = 0.05


@dataclass(frozen=True)
class SeedSettings:
    """Check 6 (costly: a second training): the soft IoU of each layer's alpha between two trainings that differ
    only in their seed, graded downwards."""

    enabled: bool = False
    seed_offset: int = 1
    agreement_warn: float = 0.85
    agreement_fail: float = 0.7


@dataclass(frozen=True)
class DiagnoseSettings:
    """strict: a fail fails the job; show_in_overview: the overview video outlines what failed; frames_shown:
    how many frames diagnostics.png draws."""

    strict: bool = False
    show_in_overview: bool = True
    frames_shown: int = 4
    background: BackgroundSettings = field(default_factory=BackgroundSettings)
    camera_model: CameraModelSettings = field(default_factory=CameraModelSettings)
    moving_background: MovingBackgroundSettings = field(default_factory=MovingBackgroundSettings)
    exposure: ExposureSettings = field(default_factory=ExposureSettings)
    masks: MaskSettings = field(default_factory=MaskSettings)
    layers: LayerSettings = field(default_factory=LayerSettings)
    seeds: SeedSettings = field(default_factory=SeedSettings)

    @classmethod
    def from_dict(cls, options: dict) -> DiagnoseSettings:
        """Settings from the config's `diagnose:` mapping; an unknown key raises ValueError naming it."""
        return _build(cls, options, "diagnose")


def _build(kind: type, options: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = [key for key in options if key not in fields]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"the keys allowed here: {', '.join(fields)}")
    values = {}
    for key, value in options.items():
        default = fields[key].default_factory() if fields[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key}: expected a mapping, got {value!r}")
            value = _build(type(default), value, f"{where}.{key}")
        values[key] = value
    return kind(**values)
