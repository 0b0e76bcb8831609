"""Which of the rendering steps run: each on or off, from the train section of the config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the train package imports this one
    from omnimatte.train.settings import TrainConfig


@dataclass(frozen=True, kw_only=True)
class RenderSettings:
    """How a trained model becomes layers: each step after the network's forward, on or off.

    sample_background: each frame's background the median of what the frames show there, each resampled once
    into it (sampled_background), rather than the learnt canvas's view;
    refine_alpha: upsample alpha guided by the full-size frame (when trained below it);
    background_match_threshold: cut alpha where the frame equals the background (0: off);
    fit_alpha: lower each alpha to what the frame shows of its layer (alpha_fit); fill_cores: raise each
    alpha well inside its coarse mask to what the frame shows there, by the plate matte's measure (core_fill);
    claim_effects: give what the frame shows beyond the background, away from every layer,
    to the nearest object's layer (effect_claim); fit_shadows: set a layer's alpha where it darkens the ground evenly
    (its measured tint divided out), outside the coarse masks, to the shadow's own (shadow_fit); cut_strays: cut alpha
    that neither reaches an object nor lies on anything the frame shows beyond the background, and alpha away from the
    objects on what moves over the background as a whole by itself (stray_cut); cut_copies:
    cut a layer's alpha on another object's body beyond its own object's reach (copy_cut); merge_overlaps: outside the
    coarse masks, give what several layers hold to the one that holds most around it or, where they hold alike, that
    it moves with (overlap_merge); detail_transfer: put the remaining residual into the layers' colour;
    background_detail: where no layer holds alpha and the background fit finds nothing but the background, the
    background is the frame itself (background_detail).
    """

    sample_background: bool
    refine_alpha: bool
    background_match_threshold: float
    fit_alpha: bool
    fill_cores: bool
    claim_effects: bool
    fit_shadows: bool
    cut_strays: bool
    cut_copies: bool
    merge_overlaps: bool
    detail_transfer: bool
    background_detail: bool

    @classmethod
    def from_config(cls, config: TrainConfig) -> "RenderSettings":
        return cls(**{field.name: getattr(config, field.name) for field in dataclasses.fields(cls)})

    @property
    def reads_background_fit(self) -> bool:
        """Whether a pass needs the background's fit (VideoTensors.unexplained, .background_only, .moves_coherently,
        .plate_views and .crossed)."""
        return self.claim_effects or self.background_detail or self.cut_strays

    def without(self, step: str) -> "RenderSettings":
        """These settings with one step switched off (its field's name)."""
        return replace(self, **{step: 0.0 if step == "background_match_threshold" else False})
