"""One frame of a trained model as layers: the network's output, then the rendering steps in order.

The steps, each in its own file and each switched by RenderSettings:
guided alpha upsampling (alpha_upsampling.py, when the network ran below the working resolution),
the plate matte (plate_matte.py), the alpha fit (alpha_fit.py), the core fill (core_fill.py),
the effect claim (effect_claim.py, with effect_motion.py to settle who owns an effect),
the shadow fit (shadow_fit.py), the stray cut (stray_cut.py), the overlap merge (overlap_merge.py) and detail
transfer (detail_transfer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from omnimatte.model import Omnimatte, colour_difference, composite_over, identity_grid, relight
from omnimatte.render.alpha_fit import fit_alphas_to_frame, mask_cores
from omnimatte.render.alpha_upsampling import guided_upsample
from omnimatte.render.core_fill import fill_cores
from omnimatte.render.detail_transfer import transfer_detail
from omnimatte.render.effect_claim import claim_effects
from omnimatte.render.effect_motion import EffectMotion
from omnimatte.render.overlap_merge import merge_overlaps
from omnimatte.render.plate_matte import NOISE_BLUR_SIGMA, noise_sets_threshold, plate_matte, plate_threshold
from omnimatte.render.settings import RenderSettings
from omnimatte.render.shadow_fit import fit_shadows
from omnimatte.render.stray_cut import cut_strays

if TYPE_CHECKING:  # the train package imports this one
    from omnimatte.train.video import VideoTensors


@dataclass(kw_only=True)
class RenderedFrame:
    """One frame's layers: colour in [-1, 1] (L,3,H,W), alpha in [0, 1] (L,1,H,W), background and composites."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    background: torch.Tensor
    model_composite: torch.Tensor  # the layers before detail transfer (the claimed effects give the frame back)
    composite: torch.Tensor  # the composite of the layers as written (after detail transfer)


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


def effect_motion_for(model: Omnimatte, video: VideoTensors, background_canvas: torch.Tensor) -> EffectMotion:
    """What the effect claim follows over the frames of one rendering pass of the model: the frames' effects, the
    masks, the camera, and the flow with the camera's motion taken out."""
    return EffectMotion(video.output_frames, video.masks,
                        lambda s: frame_background(model, video, s, background_canvas)[0], video.output_grid,
                        video.flow - video.background_flow)


def network_layers(model: Omnimatte, video: VideoTensors, t: int, refine_alpha: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's layers for frame t at the working resolution: colour (L, 3, H, W) in [-1, 1] and alpha
    (L, 1, H, W) in [0, 1]. Trained below the working resolution, the colour is upsampled bilinearly and the
    alpha, with refine_alpha, by guided upsampling (alpha_upsampling), else bilinearly too."""
    grid = video.background_grid[t:t + 1]
    inputs = model.layer_inputs(video.masks[t:t + 1], video.flow[t:t + 1], grid)
    rgba, _ = model.net(inputs.flatten(0, 1))
    rgb = rgba[:, :3].float()
    alpha = rgba[:, 3:4].float() * 0.5 + 0.5
    output_size = tuple(video.output_frames.shape[-2:])
    if tuple(rgba.shape[-2:]) != output_size:  # trained below the working resolution
        rgb = F.interpolate(rgb, size=output_size, mode="bilinear", align_corners=False)
        if refine_alpha:
            alpha = guided_upsample(alpha, video.frames[t:t + 1] * 0.5 + 0.5, video.output_frames[t:t + 1] * 0.5 + 0.5)
        else:
            alpha = F.interpolate(alpha, size=output_size, mode="bilinear", align_corners=False)
    return rgb, alpha


@torch.no_grad()
def render_frame(model: Omnimatte, video: VideoTensors, t: int, background_canvas: torch.Tensor,
                 settings: RenderSettings, motion: EffectMotion | None) -> RenderedFrame:
    """Render frame t at the working resolution, without jitter: the network's layers, then the steps in order.

    `background_canvas` is model.render_background(), rendered once for all frames. Each step
    runs when its setting is on:
    1. guided upsampling (refine_alpha), below the working resolution (network_layers);
    2. the plate matte (a positive background_match_threshold): alpha cut where the frame equals the background;
    3. the alpha fit (fit_alpha): each alpha lowered to what the frame shows of its layer, but where the
       network is sure of its object well inside the coarse mask;
    4. the core fill (fill_cores, with the plate matte's threshold as its measure): well inside each coarse
       mask, alpha raised to how far the frame is from what lies behind the layer, opaque past the
       threshold, except where that is an even darkening;
    5. the effect claim (claim_effects): what the frame shows beyond the background away from every layer
       goes to the nearest object's layer or, where several objects reach it, to the one it moves with as
       `motion` (effect_motion_for(...), for every frame of one pass) follows it; None leaves the nearest;
       a region that stays put on the background more than it moves with its object is claimed by none (how much
       more, from where the background fit finds the camera model broken: video.unexplained, when fitted), nor
       one that does not move with its object but whose own flow (video.flow less the camera's) goes another way;
    6. the shadow fit (fit_shadows): where a layer holds an even darkening of what lies below it, outside
       every coarse mask, its alpha is set to the darkening's, in black; on a frame whose noise sets the plate
       threshold (noise_sets_threshold, with the plate matte on), judged blurred as the plate matte judges it;
    7. the stray cut (cut_strays): alpha neither near some coarse mask nor on what the frame shows beyond the
       background, at the effect claim's scale, nor joined to either through alpha above a faint level, is cut;
    8. the overlap merge (merge_overlaps): outside every coarse mask, what several layers hold goes to the layer
       that holds most around it, the layers composited into it, so that no effect is split between layers;
    9. detail transfer (detail_transfer): each foreground layer's colour gets the residual between the frame
       and the layers' composite, attenuated by the layers in front of it, so fine texture the network
       could not reproduce still ends up in some layer.
    """
    rgb, alpha = network_layers(model, video, t, settings.refine_alpha)
    output_size = tuple(video.output_frames.shape[-2:])
    background, brightness = frame_background(model, video, t, background_canvas)
    if brightness is not None:
        rgb = relight(rgb, brightness)
    target = video.output_frames[t:t + 1]
    match = settings.background_match_threshold
    difference = colour_difference(target, background)
    noisy = match > 0 and noise_sets_threshold(difference, alpha, match)
    if match > 0:
        alpha = alpha * plate_matte(target, background, alpha, match, noisy)
    fill = settings.fill_cores and match > 0
    cores = mask_cores(video.masks[t], output_size) if settings.fit_alpha or fill else None
    if settings.fit_alpha:
        alpha = fit_alphas_to_frame(target, background, rgb, alpha, cores)
    if fill:
        rgb, alpha = fill_cores(target, background, rgb, alpha, cores, plate_threshold(difference, alpha, match))
    if settings.claim_effects:
        rgb, alpha = claim_effects(target, background, rgb, alpha, None if motion is None else motion.scorer(t),
                                   None if video.unexplained is None else video.unexplained.frame(t))
    if settings.fit_shadows:
        rgb, alpha = fit_shadows(target, background, rgb, alpha, video.masks[t], NOISE_BLUR_SIGMA if noisy else 0.0)
    if settings.cut_strays:
        alpha = cut_strays(target, background, alpha, video.masks[t])
    if settings.merge_overlaps:
        rgb, alpha = merge_overlaps(rgb, alpha, video.masks[t])
    model_composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    composite = model_composite
    if settings.detail_transfer:
        rgb = transfer_detail(target, model_composite, rgb, alpha)
        composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    return RenderedFrame(rgb=rgb, alpha=alpha, background=background, model_composite=model_composite, composite=composite)
