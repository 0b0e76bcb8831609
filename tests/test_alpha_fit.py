"""The alpha fit (render/alpha_fit.py): it lowers alpha to what the frame shows of a layer and nothing else."""

import pytest
import torch
import torch.nn.functional as F

from omnimatte.imaging.luma_chroma import RGB_TO_YCBCR
from omnimatte.model import colour_difference, composite_over
from omnimatte.render.alpha_fit import fit_alphas_to_frame, mask_cores, masks_at
from omnimatte.render.plate_matte import plate_threshold


def flat(value: float, channels: int = 3, size: int = 4) -> torch.Tensor:
    return torch.full((1, channels, size, size), value)


def test_a_halo_over_an_unchanged_background_is_cut():
    """Where the frame shows just the background, a layer whose colour differs from it shows nowhere."""
    background = flat(0.0)
    layer = flat(0.6)  # the object's colour, smeared past its edge by the network
    alpha = flat(0.3, 1)
    fitted = fit_alphas_to_frame(background.clone(), background, layer, alpha)
    assert fitted.max().item() < 0.01


def test_a_layer_that_explains_the_frame_keeps_its_alpha():
    background = flat(-0.2)
    layer = torch.stack([flat(0.8)[0], flat(-0.9)[0]])
    alpha = torch.stack([flat(0.7, 1)[0], flat(0.25, 1)[0]])
    frame = composite_over(background, list(layer.split(1)), list(alpha.split(1)))
    assert fit_alphas_to_frame(frame, background, layer, alpha) == pytest.approx(alpha, abs=1e-5)


def test_a_faint_effect_of_the_wrong_colour_keeps_the_alpha_any_colour_would_need():
    """A shadow the network has not coloured: its colour says nothing, so the alpha is kept up to the
    least alpha with which some colour reaches the frame (a darkening of 0.3 from 0.0 toward -1)."""
    background = flat(0.0)
    frame = flat(-0.3)
    layer = torch.tensor([0.5, -0.5, 0.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)  # orthogonal to the darkening
    assert fit_alphas_to_frame(frame, background, layer, flat(0.2, 1)) == pytest.approx(flat(0.2, 1))
    assert fit_alphas_to_frame(frame, background, layer, flat(0.6, 1)) == pytest.approx(flat(0.3, 1), abs=1e-5)


def test_alpha_is_never_raised():
    background = flat(0.0)
    layer = flat(-1.0)
    frame = flat(-0.5)  # half of the layer would explain it
    assert fit_alphas_to_frame(frame, background, layer, flat(0.0, 1)).max().item() == 0.0
    assert fit_alphas_to_frame(frame, background, layer, flat(0.2, 1)) == pytest.approx(flat(0.2, 1))


def test_each_layer_is_judged_against_what_lies_below_and_in_front_of_it():
    """A back layer that explains the frame keeps its alpha; the front layer's halo over it is cut, and the
    back layer is judged through the front layer's transparency, not against the bare background."""
    background = flat(0.0)
    back, front = flat(0.8), flat(-0.8)
    frame = composite_over(background, [back], [flat(0.5, 1)])
    fitted = fit_alphas_to_frame(frame, background, torch.cat([back, front]), torch.cat([flat(0.5, 1), flat(0.3, 1)]))
    assert fitted[1].max().item() < 0.01
    assert fitted[0] == pytest.approx(flat(0.5, 1)[0], abs=1e-5)


def test_a_sure_alpha_well_inside_the_coarse_mask_stands_and_the_ring_of_slack_is_still_cut():
    """An opaque ball whose smooth network colour is stronger than the frame shows: the fit alone would
    make it half transparent. Inside the mask's core (the mask shrunk by 3 px at 144 px) the sure
    alpha stands; in the mask's ring, where the network holds the ground opaque, the fit still cuts."""
    size = 144
    background = torch.zeros(1, 3, size, size)
    ball = torch.zeros(1, 1, size, size)
    ball[..., 50:94, 50:94] = 1.0
    mask = torch.zeros(1, 1, size, size)
    mask[..., 48:96, 48:96] = 1.0  # the object dilated 2 px, as coarse masks are
    frame = composite_over(background, [torch.full_like(background, 0.4)], [ball])
    layer = torch.full_like(background, 0.8)  # twice as far from the ground as the frame
    alpha = mask.clone()  # the network: opaque over the whole mask, ring included
    cores = mask_cores(masks_at(mask, (size, size)))
    assert cores.sum() == (48 - 2 * 3) ** 2
    plain = fit_alphas_to_frame(frame, background, layer, alpha)
    fitted = fit_alphas_to_frame(frame, background, layer, alpha, cores)
    assert plain[..., 60:84, 60:84].max() < 0.6  # without the core: half transparent
    assert torch.equal(fitted[cores], alpha[cores])
    ring = (mask > 0) & (ball == 0)
    assert fitted[ring].max() < 0.01
    unsure = fit_alphas_to_frame(frame, background, layer, alpha * 0.85, cores)
    assert unsure[..., 60:84, 60:84].max() < 0.6  # below CORE_ALPHA the fit acts inside too


def chroma_halved(image: torch.Tensor) -> torch.Tensor:
    """`image` (1, 3, H, W) with its chroma stored as 4:2:0 codecs store it: averaged over 2x2 pixels, then
    interpolated back."""
    to_ycbcr = torch.from_numpy(RGB_TO_YCBCR)
    ycbcr = torch.einsum("ij,njhw->nihw", to_ycbcr, image)
    chroma = F.interpolate(F.avg_pool2d(ycbcr[:, 1:], 2), scale_factor=2, mode="bilinear", align_corners=False)
    ycbcr = torch.cat((ycbcr[:, :1], chroma), 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_ycbcr), ycbcr).clamp(-1, 1)


def test_inside_a_mask_on_4_2_0_footage_a_halo_is_cut_though_the_chroma_holds_the_objects_colour():
    """A red disc over brown ground, its chroma at half resolution: the pixels just outside it hold some of its red
    in their chroma, their luma the ground's. Inside the disc's coarse mask the network's halo there (a dark edge at
    half alpha) explains none of the frame and is cut, though a floor read from every channel keeps up to a quarter
    of it, as it does outside every mask."""
    size = 64
    rows, columns = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    radius = ((rows - 31.3) ** 2 + (columns - 32.6) ** 2).sqrt()[None, None]
    disc = (12.5 - radius).clamp(0, 1)  # antialiased
    background = torch.tensor([0.1, 0.0, -0.15]).view(1, 3, 1, 1).expand(1, 3, size, size)
    red = torch.tensor([0.5, -0.6, -0.7]).view(1, 3, 1, 1).expand(1, 3, size, size)
    frame = chroma_halved(composite_over(background, [red], [disc]))
    ring = (radius > 12.5) & (radius < 14.5)
    assert (frame - background).abs().amax(1, keepdim=True)[ring].max() > 0.15  # the chroma carries the red out
    layer = torch.where(radius < 12.5, red, torch.full_like(red, -0.8))
    alpha = torch.where(radius < 12.5, 1.0, torch.where(radius < 15.5, 0.5, 0.0))
    mask = radius < 15.5  # the disc grown by 3 px, as coarse masks are
    assert fit_alphas_to_frame(frame, background, layer, alpha, masked=mask, luma_in_masks=True)[ring].max() < 0.01
    assert fit_alphas_to_frame(frame, background, layer, alpha, masked=~mask, luma_in_masks=True)[ring].max() > 0.2


def test_outside_the_masks_a_faint_effect_that_darkens_one_channel_keeps_the_alpha_that_channel_needs():
    """An object's occlusion of a blue sky darkens the ground's blue alone (by 0.1 from 0.0): outside every mask the
    floor reads every channel and keeps an alpha of 0.1; inside one it reads the luma, a ninth of that."""
    background = flat(0.0)
    frame = background.clone()
    frame[:, 2] = -0.1
    layer = torch.tensor([0.5, -0.5, 0.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)  # orthogonal to the darkening
    outside = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    assert fit_alphas_to_frame(frame, background, layer, flat(0.3, 1), masked=outside,
                               luma_in_masks=True) == pytest.approx(flat(0.1, 1), abs=1e-3)
    assert fit_alphas_to_frame(frame, background, layer, flat(0.3, 1), masked=~outside,
                               luma_in_masks=True) == pytest.approx(
        flat(0.0114, 1), abs=1e-3)


def test_on_a_noisy_frame_a_layer_that_adds_less_than_the_noise_keeps_what_a_faint_shadow_needs_and_no_more():
    """Noisy ground (0.04 a channel, about 5 levels of 255) under a layer whose colour is close to the ground's, at
    alpha 0.8 everywhere: where the layer adds less than the plate threshold, each pixel's noise set its fit (the
    halo keeps 0.13 over plain ground, 0.52 over a faint shadow whose least alpha is 0.06). Judged on the residual
    averaged outside the masks, plain ground keeps under 0.02 and the shadow what it needs, to within the averaged
    noise; inside the mask the alpha is judged pixel by pixel as before."""
    size = (64, 96)
    background = torch.full((1, 3, *size), -0.2)
    shadow = torch.zeros(1, 1, *size)
    shadow[..., 8:56, 8:40] = 0.06
    noise = 0.04 * torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    frame = background + shadow * (-1.0 - background) + noise
    layer = background - 0.1
    alpha = torch.full((1, 1, *size), 0.8)
    masked = torch.zeros(1, 1, *size, dtype=torch.bool)
    masked[..., 20:44, 60:84] = True
    plain = torch.zeros_like(masked)
    plain[..., 8:56, 48:56] = True
    plain[..., 0:16, 56:96] = True
    threshold = plate_threshold(colour_difference(frame, background), torch.zeros(1, 1, *size), 0.04)
    per_pixel = fit_alphas_to_frame(frame, background, layer, alpha, masked=masked)
    judged = fit_alphas_to_frame(frame, background, layer, alpha, masked=masked, noise_threshold=threshold)
    assert per_pixel[plain].mean() > 0.1 and per_pixel[..., 10:54, 10:38].mean() > 0.4
    assert judged[plain].mean() < 0.02
    assert 0.055 < judged[..., 10:54, 10:38].mean() < 0.09
    assert torch.equal(judged[masked], per_pixel[masked])
