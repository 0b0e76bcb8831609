"""Training settings: every weight, switch and size, and where and why they leave the authors' values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from omnimatte.model import ALPHA_ACTIVATIONS, BACKGROUNDS, BRIGHTNESS_KINDS, NORMS

ALPHA_REG_TARGETS = ("composited", "coverage")

# On the CPU a step of the paper's network and batch at 448x256 takes seconds; these
# settings (train.cpu in config/config.yaml, which the pipeline passes in) get past the
# alpha L1 switch and take the demo's shadow in minutes: a narrower network on half-size
# frames, a smaller batch, no bf16, a schedule of 800 steps (never fewer; more while the
# layers still move), and a canvas that learns at three tenths of the rate, so that it
# sharpens within that schedule.
CPU_SETTINGS = {"nf": 16, "batch_size": 4, "scale": 0.5, "steps": 800, "min_steps": 800, "max_steps": 2400,
                "canvas_learning_rate_fraction": 0.3, "bf16": False}


@dataclass(kw_only=True)
class TrainConfig:
    """Training settings. The defaults go past the authors' method (a sharp canvas background, the clamped alpha,
    the plate matte, the held mask); each of their choices is a setting."""

    # The run's expected length: the schedule places the alpha L1 switch and the learning rate's decay by
    # fractions of it (schedule.py). Training stops on its own once every phase has run and the layers
    # have settled (stopping.py): from min_steps, before or after `steps`, and by max_steps at the latest.
    steps: int = 4000
    max_steps: int = 8000
    min_steps: int = 4000
    # The stopping rule: every stop_check_every steps the model renders stop_check_frames fixed frames at the
    # training size, without jitter; training stops after stop_patience checks in a row, all after the
    # schedule's last phase, in which the share of each layer's alpha that changed is at most
    # stop_alpha_tolerance and the reconstruction's mean change (0..1) at most stop_reconstruction_tolerance.
    # The frames are rendered with a moving average of the weights, keeping stop_average_decay of itself
    # each step: at a constant learning rate the last step's layers keep moving by a few hundredths every
    # 25 steps (the batches and the jitter differ), the average's by their drift alone.
    stop_check_every: int = 25
    stop_check_frames: int = 6
    stop_patience: int = 3
    stop_alpha_tolerance: float = 0.015
    stop_reconstruction_tolerance: float = 0.001
    stop_average_decay: float = 0.99
    batch_size: int = 8  # frame pairs per step
    learning_rate: float = 1e-3
    # After the alpha L1 term switches off, the learning rate falls along a cosine to this
    # fraction of itself by the last step (1.0, the default: constant, the authors'; a decay to
    # 0.1 scores lower on every preset of the fast suite).
    final_learning_rate_fraction: float = 1.0
    nf: int = 64
    norm: str = "group"  # "group" or the authors' "batch"
    # "clamp", whose zero alpha can grow back (model/alpha_activation.py), or the authors' "tanh".
    alpha_activation: str = "clamp"
    latent_scale: int = 16  # canvas pixels per cell of the background noise latent
    # "canvas": a learnable image that starts as a median of the registered frames (train/video.py);
    # "network": the paper's U-Net over a noise canvas.
    background: str = "canvas"
    # The canvas background learns at this fraction of the learning rate: slowly enough that the layers
    # take what their objects leave behind (a lingering dust cloud) before the static canvas can absorb
    # it; fast enough to sharpen the plate.
    canvas_learning_rate_fraction: float = 0.1
    # The canvas as this many summed pixel grids, each half the size of the last (1: one full-resolution
    # grid; coarser ones let wide, smooth effects into the canvas fast; model/background.py).
    canvas_levels: int = 1
    # How much a frame teaches the canvas at a pixel an object has already reached, against 1 before
    # (camera.first_reached), where the frame does not show the canvas to within background_match_threshold:
    # what an object leaves behind trails it, so the frames before it arrives show the ground and those
    # after may show its dust; 0 lets only the earlier frames and those that agree with the canvas shape
    # it there, 1 every frame alike, as the paper's background.
    canvas_weight_once_reached: float = 0.25
    camera_adjustment: bool = True  # the authors' per-frame brightness and background offset
    # The adjustment's brightness: "frame", one scale per frame, or "field", the authors' coarse
    # 4x7 field, which also darkens where a shadow lies (model/camera_adjustment.py).
    camera_brightness: str = "frame"
    lambda_camera_adjustment: float = 0.001
    # The network trains and renders at this fraction of the working resolution; its layers
    # are upsampled to the working resolution (alpha guided by the frame, see refine_alpha)
    # and detail transfer restores the fine colour detail there.
    scale: float = 1.0
    refine_alpha: bool = True  # below the working resolution: upsample alpha guided by the full-size frame
    # Rendering cuts each layer's alpha where the frame equals the (canvas) background to within
    # this colour difference (0..1; 0: off; render/plate_matte.py). In training, a frame pixel within it
    # shows the background: with the clamped alpha a zero alpha stays zero there, and it teaches the canvas
    # fully even where an object has been (canvas_weight_once_reached). Both rise above the clip's noise
    # (render/plate_matte.noise_aware_threshold; train/loop.training_match_threshold).
    background_match_threshold: float = 0.04
    # ... and then lowers each alpha to what the frame shows of its layer, given the layer's own
    # colour (the compositing equation; see render/alpha_fit.py).
    fit_alpha: bool = True
    # ... and raises each alpha inside its coarse mask's core to what the frame shows beyond what lies
    # behind it, by the plate matte's measure (so only with a positive background_match_threshold): objects
    # opaque where the mask is sure (see render/core_fill.py).
    fill_cores: bool = True
    # ... and gives what the frame shows beyond the background, away from every layer, to the
    # nearest object's layer: the effects the network left at zero alpha (see render/effect_claim.py).
    claim_effects: bool = True
    # ... and, outside every coarse mask, sets a layer's alpha where it darkens the ground evenly (once the shadow's
    # tint, measured from what the layer holds, is divided out) to the share of light it takes: a shadow at its own
    # alpha, in black or the tint the sky leaves (see render/shadow_fit.py).
    fit_shadows: bool = True
    # ... and cuts alpha that is neither near some object's coarse mask nor on anything the frame shows beyond
    # the background, nor joined to either through alpha above a faint level: the faint alpha a layer scatters
    # over the ground's texture far from its object (see render/stray_cut.py).
    cut_strays: bool = True
    # ... and cuts a layer's alpha on another object's body (its coarse mask, where its layer holds it) beyond the
    # object's reach (diagnose.background.effect_reach): the faint copies of the other objects a layer holds
    # (see render/copy_cut.py).
    cut_copies: bool = True
    # Rendering: outside the masks, where one layer holds three times any other's alpha around a pixel, or where
    # several hold alike but the region moves with one holder's object clearly better than with the others', that
    # layer takes what all of them hold there, composited into one (see render/overlap_merge.py).
    merge_overlaps: bool = True
    # Rendering: each frame's background is the median of what the frames show there, each carried into it by the
    # camera (one bicubic resampling), where no coarse mask and no layer's alpha is; the learnt canvas where too few
    # frames show it (see render/sampled_background.py). Off: it pays on footage (noise, a codec), not on noiseless
    # composites, whose learnt canvas is sharper and keeps a lingering dust cloud out.
    sample_background: bool = False
    lambda_mask: float = 50.0
    mask_threshold: float = 0.02  # the mask term drops 10x at the first epoch end where its error is below
    # this (at the latest at half the alpha L1 switch) and is off at twice that step; from then on each layer's
    # mean alpha inside its mask, frame by frame, is held at this or more, at the cut weight (0: nothing, the
    # authors'), so that no layer can lose its object.
    object_alpha_floor: float = 0.5
    lambda_alpha_l1: float = 0.01
    # ... and the alpha L1 term is off from this fraction of `steps`, whatever the clip's length.
    alpha_l1_off_fraction: float = 0.8
    lambda_alpha_l0: float = 0.005
    # What the sparsity terms see: "composited", the authors' (each layer's alpha composited by
    # itself, about sum a_i^2 prod(1 - a_j), gentle on faint alpha), or "coverage" (1 - prod(1 - a_i)).
    alpha_reg_target: str = "composited"
    lambda_flow: float = 1.0
    lambda_alpha_warp: float = 0.005
    trimap_band: int = 10  # px outside the mask where the mask term says nothing
    jitter_rate: float = 0.75
    jitter_max_scale: float = 1.25
    detail_transfer: bool = True
    # Rendering: where no layer holds alpha and the background fit finds nothing but the background there (the
    # registered background explains the frame to within its noise, or the background moves by itself), each frame's
    # background is the frame itself: the footage's grain, texture and moving background (see
    # render/background_detail.py).
    background_detail: bool = True
    checkpoint_every: int = 200
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # bf16 autocast (train.cpu turns it off: slower on CPUs without bf16 units)
    channels_last: bool = True
    compile: bool = False
    # Settings that replace the above when training runs on the CPU (see CPU_SETTINGS).
    cpu: dict = dataclasses.field(default_factory=lambda: dict(CPU_SETTINGS))

    def __post_init__(self) -> None:
        choices = {"norm": NORMS, "alpha_activation": ALPHA_ACTIVATIONS, "background": BACKGROUNDS,
                   "alpha_reg_target": ALPHA_REG_TARGETS, "camera_brightness": BRIGHTNESS_KINDS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name} is {getattr(self, name)!r}; choose from {', '.join(allowed)}")
        if not 0.0 < self.alpha_l1_off_fraction <= 1.0:
            raise ValueError(f"train.alpha_l1_off_fraction is {self.alpha_l1_off_fraction}; it must be in (0, 1]")
        if not 0 <= self.min_steps <= self.max_steps or not 1 <= self.steps <= self.max_steps:
            raise ValueError(f"train.steps ({self.steps}) and train.min_steps ({self.min_steps}) must lie within "
                             f"train.max_steps ({self.max_steps}); steps at least 1")
        for name in ("stop_check_every", "stop_check_frames", "stop_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} is {getattr(self, name)}; it must be at least 1")
        if self.stop_alpha_tolerance < 0 or self.stop_reconstruction_tolerance < 0:
            raise ValueError("train.stop_alpha_tolerance and train.stop_reconstruction_tolerance must be at least 0")
        if not 0.0 <= self.stop_average_decay < 1.0:
            raise ValueError(f"train.stop_average_decay is {self.stop_average_decay}; it must be in [0, 1)")
        if not 0.0 <= self.object_alpha_floor <= 1.0:
            raise ValueError(f"train.object_alpha_floor is {self.object_alpha_floor}; it must be in [0, 1]")
        if self.canvas_levels < 1:
            raise ValueError(f"train.canvas_levels is {self.canvas_levels}; it must be at least 1")
        if not 0.0 <= self.canvas_learning_rate_fraction <= 1.0:
            raise ValueError(f"train.canvas_learning_rate_fraction is {self.canvas_learning_rate_fraction}; "
                             "it must be in [0, 1]")
        if not 0.0 <= self.canvas_weight_once_reached <= 1.0:
            raise ValueError(f"train.canvas_weight_once_reached is {self.canvas_weight_once_reached}; "
                             "it must be in [0, 1]")
        if not 0.0 < self.final_learning_rate_fraction <= 1.0:
            raise ValueError(f"train.final_learning_rate_fraction is {self.final_learning_rate_fraction}; "
                             "it must be in (0, 1]")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown train settings: {', '.join(unknown)}")
        config = cls(**values)
        config.for_device(torch.device("cpu"))  # check the CPU overrides early
        return config

    def set_but_replaced_on_cpu(self) -> list[tuple[str, object, object]]:
        """The settings given another value than their default (a person set them) that train.cpu replaces on the CPU
        with yet another: (name, the value set, train.cpu's), so the train stage can say that what was set is not what
        runs."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)
                    if f.default is not dataclasses.MISSING}
        return [(name, getattr(self, name), value) for name, value in self.cpu.items()
                if name in defaults and getattr(self, name) != defaults[name] and getattr(self, name) != value]

    def for_device(self, device: torch.device) -> "TrainConfig":
        """These settings with the CPU overrides applied when `device` is the CPU."""
        if device.type != "cpu" or not self.cpu:
            return self
        changes = dict(self.cpu)
        allowed = {f.name for f in dataclasses.fields(self)} - {"cpu"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown train.cpu settings: {', '.join(unknown)}")
        return dataclasses.replace(self, cpu={}, **changes)
