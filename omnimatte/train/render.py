"""Rendering a trained model into the output contract's layers, background and reconstruction."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from omnimatte.contract import OmnimatteFiles
from omnimatte.io import atomic_dir, frame_name, write_png
from omnimatte.logs import get_logger
from omnimatte.model import Omnimatte, colour_difference, composite_over, identity_grid, relight
from omnimatte.train.alpha_fit import fit_alphas_to_frame, mask_cores
from omnimatte.train.alpha_upsampling import guided_upsample
from omnimatte.train.batch import layer_inputs
from omnimatte.train.core_fill import fill_cores
from omnimatte.train.effect_claim import claim_effects
from omnimatte.train.effect_motion import EffectMotion
from omnimatte.train.shadow_fit import fit_shadows
from omnimatte.train.settings import TrainConfig
from omnimatte.train.video import VideoTensors

log = get_logger("train")


@dataclass(frozen=True)
class RenderSettings:
    """How a trained model becomes layers: each step after the network's forward, on or off.

    refine_alpha: upsample alpha guided by the full-size frame (when trained below it);
    plate_matte_threshold: cut alpha where the frame equals the background (0: off);
    fit_alpha: lower each alpha to what the frame shows of its layer (alpha_fit); fill_cores: raise each
    alpha well inside its coarse mask to what the frame shows there, by the plate matte's measure (core_fill);
    claim_effects: give what the frame shows beyond the background, away from every layer,
    to the nearest object's layer (effect_claim); fit_shadows: set a layer's alpha where it darkens
    the ground evenly, outside the coarse masks, to the shadow's own (shadow_fit); detail_transfer:
    put the remaining residual into the layers' colour.
    """

    refine_alpha: bool
    plate_matte_threshold: float
    fit_alpha: bool
    fill_cores: bool
    claim_effects: bool
    fit_shadows: bool
    detail_transfer: bool

    @classmethod
    def from_config(cls, config: TrainConfig) -> "RenderSettings":
        return cls(config.refine_alpha, config.plate_matte_threshold, config.fit_alpha, config.fill_cores,
                   config.claim_effects, config.fit_shadows, config.detail_transfer)

    def without(self, step: str) -> "RenderSettings":
        """These settings with one step switched off (its field's name)."""
        return replace(self, **{step: 0.0 if step == "plate_matte_threshold" else False})


@dataclass
class RenderedFrame:
    """One frame's layers: colour in [-1, 1] (L,3,H,W), alpha in [0, 1] (L,1,H,W), background and composites."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    background: torch.Tensor
    model_composite: torch.Tensor  # the layers before detail transfer (the claimed effects give the frame back)
    composite: torch.Tensor  # the composite of the layers as written (after detail transfer)


def plate_matte(frame: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, threshold: float) -> torch.Tensor:
    """How much each pixel (1, 1, H, W) may hold any layer: 0 where the frame shows exactly the background.

    With a sharp background, a pixel whose colour equals the background's needs no layer
    there, whatever the network's smooth alpha says (the gaps between a dog's legs, the
    halo a coarse mask leaves). The largest channel difference d (0..1) against the
    threshold gives clamp(d / t, 0, 1), where t is `threshold` or, on noisy footage,
    three times the frame's median d over the pixels no layer holds, if that is larger.
    """
    difference = colour_difference(frame, background)
    return (difference / plate_threshold(difference, alpha, threshold)).clamp(0, 1)


def plate_threshold(difference: torch.Tensor, alpha: torch.Tensor, threshold: float) -> float:
    """The colour difference past which a pixel surely shows more than the background, given the frame's
    `difference` from it (colour_difference): `threshold`, or three times the median difference over the
    pixels no layer holds (the frame's noise), if that is larger."""
    empty = (alpha.amax(0, keepdim=True) < 0.01)
    noise = float(difference[empty].median()) if bool(empty.any()) else 0.0
    return max(threshold, 3.0 * noise)


def frame_background(model: Omnimatte, video: VideoTensors, t: int,
                     background_canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frame t's background (1, 3, H, W) at the working resolution, relit, and the camera
    adjustment's brightness for the layers (None without it)."""
    output_size = tuple(video.output_frames.shape[-2:])
    offset = brightness = None
    if model.camera is not None:
        frame = torch.tensor([t], device=background_canvas.device)
        brightness, offset = model.camera.fields(frame, identity_grid(1, *output_size, background_canvas.device))
    background = model.view_background(background_canvas.float(), video.output_grid[t:t + 1], offset)
    if brightness is not None:
        background = relight(background, brightness)
    return background, brightness


def effect_motion(model: Omnimatte, video: VideoTensors, background_canvas: torch.Tensor) -> EffectMotion:
    """What the effect claim follows over the frames of one rendering pass of the model."""
    return EffectMotion(video.output_frames, video.masks,
                        lambda s: frame_background(model, video, s, background_canvas)[0])


@torch.no_grad()
def render_frame(model: Omnimatte, video: VideoTensors, t: int, background_canvas: torch.Tensor,
                 settings: RenderSettings, motion: EffectMotion | None) -> RenderedFrame:
    """Render frame t at the working resolution, without jitter.

    `background_canvas` is model.render_background(full_size=True), rendered once for
    all frames. Trained below the working resolution, the layers' colour is upsampled
    bilinearly and their alpha, with refine_alpha, by guided upsampling. A positive
    `plate_matte_threshold` cuts the alphas where the frame equals the background (plate_matte);
    with fit_alpha, each alpha is then lowered to what the frame shows of its layer, but where the
    network is sure of its object well inside the coarse mask (alpha_fit); with fill_cores (and a positive
    threshold, its measure), well inside each coarse mask the alpha is raised to how far the frame is from
    what lies behind the layer, opaque past the threshold, except where that is an even darkening (core_fill);
    with claim_effects, what the frame shows beyond the background away from every layer goes
    to the nearest object's layer (effect_claim), or, where several objects reach it, to the one
    it moves with as `motion` (effect_motion(...), for every frame of one pass) follows it; None
    leaves the nearest. With fit_shadows, where a layer holds a darkening of what lies below it that is
    even, outside every coarse mask, its alpha is set to the darkening's, in black (shadow_fit). With detail
    transfer, each foreground layer's colour gets the residual between the frame and the model's
    composite, attenuated by the layers in front of it, so fine texture the network could not
    reproduce still ends up in some layer.
    """
    grid = video.background_grid[t:t + 1]
    inputs = layer_inputs(model, video.masks[t:t + 1], video.flow[t:t + 1], grid)
    rgba, _ = model.net(inputs.flatten(0, 1))
    rgb = rgba[:, :3].float()
    alpha = rgba[:, 3:4].float() * 0.5 + 0.5
    output_size = tuple(video.output_frames.shape[-2:])
    if tuple(rgba.shape[-2:]) != output_size:  # trained below the working resolution
        rgb = F.interpolate(rgb, size=output_size, mode="bilinear", align_corners=False)
        if settings.refine_alpha:
            alpha = guided_upsample(alpha, video.frames[t:t + 1] * 0.5 + 0.5, video.output_frames[t:t + 1] * 0.5 + 0.5)
        else:
            alpha = F.interpolate(alpha, size=output_size, mode="bilinear", align_corners=False)
    background, brightness = frame_background(model, video, t, background_canvas)
    if brightness is not None:
        rgb = relight(rgb, brightness)
    target = video.output_frames[t:t + 1]
    if settings.plate_matte_threshold > 0:
        alpha = alpha * plate_matte(target, background, alpha, settings.plate_matte_threshold)
    fill = settings.fill_cores and settings.plate_matte_threshold > 0
    cores = mask_cores(video.masks[t], output_size) if settings.fit_alpha or fill else None
    if settings.fit_alpha:
        alpha = fit_alphas_to_frame(target, background, rgb, alpha, cores)
    if fill:
        threshold = plate_threshold(colour_difference(target, background), alpha, settings.plate_matte_threshold)
        rgb, alpha = fill_cores(target, background, rgb, alpha, cores, threshold)
    if settings.claim_effects:
        rgb, alpha = claim_effects(target, background, rgb, alpha, None if motion is None else motion.scorer(t))
    if settings.fit_shadows:
        rgb, alpha = fit_shadows(target, background, rgb, alpha, video.masks[t])
    model_composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    composite = model_composite
    if settings.detail_transfer:
        residual = target - model_composite
        covered = torch.zeros_like(alpha[:1])
        adjusted = []
        for i in reversed(range(len(rgb))):
            adjusted.append(rgb[i:i + 1] + (1.0 - covered) * residual)
            covered = alpha[i:i + 1] + (1.0 - alpha[i:i + 1]) * covered
        rgb = torch.cat(adjusted[::-1]).clamp(-1, 1)
        composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    return RenderedFrame(rgb, alpha, background, model_composite, composite)


@torch.no_grad()
def render_layers(model: Omnimatte, video: VideoTensors, settings: RenderSettings, out_dir: Path,
                  sample: str) -> dict[str, float]:
    """Render every frame and write the contract's layers, background and reconstruction."""
    model.eval()
    background_canvas = model.render_background(full_size=True)
    motion = effect_motion(model, video, background_canvas) if settings.claim_effects else None
    num_layers = len(video.object_names)
    alpha_sums = np.zeros(num_layers)
    psnr_model, psnr_output = [], []
    with atomic_dir(out_dir) as tmp:
        files = OmnimatteFiles(tmp)
        folders = {name: files.layer(name) for name in video.object_names}
        for folder in [*folders.values(), files.background, files.reconstruction]:
            folder.mkdir(parents=True)
        for t in tqdm(range(video.num_frames), desc=f"{sample}: render", unit="frame"):
            frame = render_frame(model, video, t, background_canvas, settings, motion)
            target = video.output_frames[t:t + 1]
            psnr_model.append(_psnr(frame.model_composite, target))
            psnr_output.append(_psnr(frame.composite, target))
            for i, name in enumerate(video.object_names):
                rgba = torch.cat((frame.rgb[i] * 0.5 + 0.5, frame.alpha[i]))
                write_png(folders[name] / frame_name(t), tensor_to_uint8(rgba), atomic=False)
                alpha_sums[i] += float(frame.alpha[i].mean())
            write_png(files.background / frame_name(t), tensor_to_uint8(frame.background[0] * 0.5 + 0.5), atomic=False)
            write_png(files.reconstruction / frame_name(t), tensor_to_uint8(frame.composite[0] * 0.5 + 0.5), atomic=False)
    for i, name in enumerate(video.object_names):
        mean_alpha = alpha_sums[i] / video.num_frames
        if mean_alpha < 1e-3:
            log.warning("%s: layer '%s' collapsed to (almost) zero alpha (mean %.2g): the object was absorbed by the "
                        "background; check that it moves relative to the background and that its mask is right",
                        sample, name, mean_alpha)
    return {"psnr_model": float(np.mean(psnr_model)), "psnr_output": float(np.mean(psnr_output)),
            "mean_alpha": {name: float(alpha_sums[i] / video.num_frames) for i, name in enumerate(video.object_names)}}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) * 0.5).pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def tensor_to_uint8(chw: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image in [0, 1] as a contiguous uint8 (H, W, C) array, rounded."""
    image = (chw.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image)
