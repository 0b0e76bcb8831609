"""One frame of a trained model as layers: the network's output, then the rendering steps in order.

What every frame of one rendering pass shares (RenderPass: the learnt canvas, each frame's background, what the
effect claim and the overlap merge follow) is made once by render_pass. The steps, each in its own file and each
switched by RenderSettings: the sampled background (sampled_background.py), guided alpha upsampling
(alpha_upsampling.py, when the network ran below the working resolution), the plate matte (plate_matte.py), the
alpha fit (alpha_fit.py), the core fill (core_fill.py), the effect claim (effect_claim.py, with effect_motion.py to
settle who owns an effect), the stray cut (stray_cut.py), the copy cut (copy_cut.py), the overlap merge
(overlap_merge.py), the shadow fit (shadow_fit.py) and detail transfer (detail_transfer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from omnimatte.imaging import to_uint8
from omnimatte.model import Omnimatte, colour_difference, composite_over, identity_grid, relight
from omnimatte.render.alpha_fit import fit_alphas_to_frame, mask_cores, masks_at
from omnimatte.render.alpha_upsampling import guided_upsample
from omnimatte.render.background_detail import add_frame_detail
from omnimatte.render.copy_cut import cut_copies
from omnimatte.render.core_fill import fill_cores
from omnimatte.render.detail_transfer import transfer_detail
from omnimatte.render.effect_claim import FREE_ALPHA, claim_effects
from omnimatte.render.effect_motion import EffectMotion
from omnimatte.render.overlap_merge import merge_overlaps
from omnimatte.render.plate_matte import NOISE_BLUR_SIGMA, noise_sets_threshold, plate_matte, plate_threshold
from omnimatte.render.sampled_background import SampledBackground, pixel_homographies
from omnimatte.render.settings import RenderSettings
from omnimatte.render.shadow_fit import fit_shadows
from omnimatte.render.stray_cut import background_misses, cut_strays

if TYPE_CHECKING:  # the train package imports this one
    from omnimatte.train.video import VideoTensors


@dataclass(kw_only=True)
class RenderedFrame:
    """One frame's layers: colour in [-1, 1] (L,3,H,W), alpha in [0, 1] (L,1,H,W), background and composites."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    background: torch.Tensor  # as written (with the background detail)
    # The layers before detail transfer over the model's background (the learnt or sampled one, before the background
    # detail): what the model explains of the frame (the claimed effects give the frame back).
    model_composite: torch.Tensor
    composite: torch.Tensor  # the composite of the layers as written over the background as written


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


def sampled_background_for(model: Omnimatte, video: VideoTensors, background_canvas: torch.Tensor,
                           refine_alpha: bool) -> SampledBackground:
    """Each frame's background sampled from the frames (sampled_background.py): a frame votes where it shows no
    coarse mask and no layer's network alpha reaches the effect claim's FREE_ALPHA; the learnt background behind the
    rest."""
    output_size = tuple(video.output_frames.shape[-2:])
    free = []
    for t in range(video.num_frames):
        _, alpha = network_layers(model, video, t, refine_alpha)
        held = (alpha >= FREE_ALPHA) | masks_at(video.masks[t], output_size)
        free.append(~held.any(0)[0].cpu().numpy())

    def learnt(t: int) -> np.ndarray:
        background = frame_background(model, video, t, background_canvas)[0]
        return (background[0].permute(1, 2, 0).float().cpu().numpy() * 0.5 + 0.5).clip(0, 1)

    frames = np.stack([to_uint8(frame.permute(1, 2, 0).float().cpu().numpy() * 0.5 + 0.5, half_even=True)
                       for frame in video.output_frames])
    return SampledBackground(frames=frames, free=np.stack(free),
                             homographies=pixel_homographies(video.output_grid.float().cpu().numpy()), learnt=learnt)


class SampledBackgrounds:
    """One model's sampled backgrounds over one video, made on first use for each refine_alpha (which shapes the
    network's alpha that decides where a frame votes) and kept for every later pass of that model, such as the
    benchmark's renders with one step off. Only for a model that no longer changes."""

    def __init__(self, model: Omnimatte, video: VideoTensors):
        self.model, self.video = model, video
        self.made: dict[bool, SampledBackground] = {}

    def for_settings(self, settings: RenderSettings, background_canvas: torch.Tensor) -> SampledBackground | None:
        if not settings.sample_background:
            return None
        if settings.refine_alpha not in self.made:
            self.made[settings.refine_alpha] = sampled_background_for(self.model, self.video, background_canvas,
                                                                      settings.refine_alpha)
        return self.made[settings.refine_alpha]


@dataclass(kw_only=True)
class RenderPass:
    """What every frame of one rendering pass of a model shares (render_pass): the learnt background canvas, the
    frames' sampled backgrounds (None without the step) and what the effect claim and the overlap merge follow
    (None without both)."""

    model: Omnimatte
    video: VideoTensors
    settings: RenderSettings
    canvas: torch.Tensor
    sampled: SampledBackground | None
    motion: EffectMotion | None

    def background(self, t: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frame t's background (1, 3, H, W) in [-1, 1] and the camera adjustment's brightness for the layers
        (None without it): sampled from the frames with that step, else the learnt canvas's view."""
        background, brightness = frame_background(self.model, self.video, t, self.canvas)
        if self.sampled is not None:
            image = self.sampled.frame(t)[0]
            background = (torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1).to(background)
        return background, brightness


@torch.no_grad()
def render_pass(model: Omnimatte, video: VideoTensors, settings: RenderSettings,
                sampled: SampledBackgrounds | None = None) -> RenderPass:
    """Everything the frames of one rendering pass with `settings` share, made once: the learnt canvas
    (model.render_background()), the sampled backgrounds (sample_background; from `sampled`, kept for the model's
    other passes, when given) and, with the effect claim or (for several objects) the overlap merge, the effect
    motion over every frame (the camera's flow taken out)."""
    canvas = model.render_background()
    sampled = (sampled or SampledBackgrounds(model, video)).for_settings(settings, canvas)
    shared = RenderPass(model=model, video=video, settings=settings, canvas=canvas, sampled=sampled, motion=None)
    if settings.claim_effects or (settings.merge_overlaps and video.masks.shape[1] > 1):
        shared.motion = EffectMotion(video.output_frames, video.masks, lambda s: shared.background(s)[0],
                                     video.output_grid, video.flow - video.background_flow)
    return shared


@torch.no_grad()
def render_frame(shared: RenderPass, t: int) -> RenderedFrame:
    """Render frame t of a rendering pass (render_pass) at the working resolution, without jitter: the network's
    layers over the frame's background, then the steps in order, each when its setting is on:
    0. the sampled background (sample_background): each frame's background the median of what the frames show
       there, each resampled once into it, rather than the learnt canvas's view;
    1. guided upsampling (refine_alpha), below the working resolution (network_layers);
    2. the plate matte (a positive background_match_threshold): alpha cut where the frame equals the background;
    3. the alpha fit (fit_alpha): each alpha lowered to what the frame shows of its layer, but where the
       network is sure of its object well inside the coarse mask, and never below what some colour needs to
       reach the frame (to reach its luma, inside the coarse masks of a clip whose chroma is at half resolution:
       video.chroma_halved); on a frame whose noise sets the plate threshold, judged outside the masks on the
       residual averaged there, and where a layer adds less than that threshold, no more than that residual needs;
    4. the core fill (fill_cores, with the plate matte's threshold as its measure): well inside each coarse
       mask, alpha raised to how far the frame is from what lies behind the layer, opaque past the
       threshold, except where that is an even darkening;
    5. the effect claim (claim_effects): what the frame shows beyond the background away from every layer
       goes to the nearest object's layer or, where several objects reach it, to the one it moves with as
       the pass's effect motion follows it;
       a region that stays put on the background more than it moves with its object is claimed by none (how much
       more, from where the background fit finds the camera model broken: video.unexplained, when fitted), nor
       one that does not move with its object but whose own flow (video.flow less the camera's) goes another way;
    6. the stray cut (cut_strays): alpha neither near some coarse mask nor on what the frame shows beyond the
       background, at the effect claim's scale, nor joined to either through alpha above a faint level, is cut,
       and away from the masks, alpha on what moves over the background as a whole by itself
       (video.moves_coherently, when fitted: parallax, unmasked movers) and where the learnt background took such a
       thing in (background_misses: video.crossed, where it misses the fit's plate, video.plate_views);
    7. the copy cut (cut_copies): a layer's alpha on another object's body (its coarse mask, where its layer holds
       it) beyond the layer's own object's reach (video.effect_reach object sizes) is cut;
    8. the overlap merge (merge_overlaps): outside every coarse mask, what several layers hold goes to the layer
       that holds most around it or, where they hold alike, to the one it moves with as the pass's effect motion
       follows it, the layers composited into it, so that no effect is split between layers;
    9. the shadow fit (fit_shadows): where a layer holds an even darkening of what lies below it (even once the
       tint of the shadows it holds in the frame is divided out), outside every coarse mask, its alpha is set to
       the darkening's, in black or that tint; on a frame whose noise sets the plate
       threshold (noise_sets_threshold, with the plate matte on), judged blurred as the plate matte judges it.
       After the merge, so that a shadow the merge composited from several layers' alpha (more than its
       darkening's) is held at its own;
    10. the background detail (background_detail): where no layer holds alpha and the frame shows nothing but the
        background by the background fit's account (video.background_only: the registered background explains it
        to within noise, or it moves by itself), the background is the frame itself;
    11. detail transfer (detail_transfer): each foreground layer's colour gets the residual between the frame
        and the layers' composite, attenuated by the layers in front of it, so fine texture the network
        could not reproduce still ends up in some layer.
    """
    model, video, settings = shared.model, shared.video, shared.settings
    scorer = None if shared.motion is None else shared.motion.scorer(t)  # how regions of frame t move
    rgb, alpha = network_layers(model, video, t, settings.refine_alpha)
    output_size = tuple(video.output_frames.shape[-2:])
    background, brightness = shared.background(t)
    if brightness is not None:
        rgb = relight(rgb, brightness)
    target = video.output_frames[t:t + 1]
    match = settings.background_match_threshold
    difference = colour_difference(target, background)
    noisy = match > 0 and noise_sets_threshold(difference, alpha, match)
    if match > 0:
        alpha = alpha * plate_matte(target, background, alpha, match, noisy)
    fill = settings.fill_cores and match > 0
    inside = masks_at(video.masks[t], output_size) if settings.fit_alpha or fill else None
    cores = None if inside is None else mask_cores(inside)
    if settings.fit_alpha:
        masked = inside.any(0, keepdim=True)
        alpha = fit_alphas_to_frame(target, background, rgb, alpha, cores, masked, luma_in_masks=video.chroma_halved,
                                    noise_threshold=plate_threshold(difference, alpha, match) if noisy else None)
    if fill:
        rgb, alpha = fill_cores(target, background, rgb, alpha, cores, plate_threshold(difference, alpha, match))
    if settings.claim_effects:
        rgb, alpha = claim_effects(target, background, rgb, alpha, scorer,
                                   None if video.unexplained is None else video.unexplained.frame(t))
    if settings.cut_strays:
        no_layer = None
        if video.moves_coherently is not None:
            no_layer = video.moves_coherently[t]
            if bool(video.crossed[t].any()):  # most clips: nothing moves by itself, so nothing to judge
                no_layer = no_layer | background_misses(video.plate_views[t], background, video.crossed[t])
        alpha = cut_strays(target, background, alpha, video.masks[t], no_layer)
    if settings.cut_copies:
        alpha = cut_copies(alpha, video.masks[t], video.effect_reach)
    if settings.merge_overlaps:
        rgb, alpha = merge_overlaps(rgb, alpha, video.masks[t], scorer)
    if settings.fit_shadows:
        rgb, alpha = fit_shadows(target, background, rgb, alpha, video.masks[t], NOISE_BLUR_SIGMA if noisy else 0.0)
    model_composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    composite = model_composite
    if settings.background_detail:
        if video.background_only is None:
            raise ValueError("the background detail needs the background's fit: load the video with background_fit")
        background = add_frame_detail(target, background, alpha, video.background_only[t])
        composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    if settings.detail_transfer:
        rgb = transfer_detail(target, composite, rgb, alpha)
        composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    return RenderedFrame(rgb=rgb, alpha=alpha, background=background, model_composite=model_composite, composite=composite)
