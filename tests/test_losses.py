"""The Omnimatte loss terms and compositing on hand-made tensors with known answers."""

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omnimatte import losses
from omnimatte.model import (CameraAdjustment, CanvasBackground, Omnimatte, OmnimatteUNet, composite_over,
                             identity_grid, sample_canvas, warp_by_flow)
from omnimatte.model.alpha_activation import signed_alpha
from omnimatte.camera import camera_flow, homography_grid
from omnimatte.train import TrainConfig


def test_reconstruction_is_mean_absolute_error():
    a = torch.zeros(1, 3, 2, 2)
    b = torch.full((1, 3, 2, 2), 0.5)
    b[0, 0, 0, 0] = 2.5
    assert losses.reconstruction_loss(a, b).item() == pytest.approx((11 * 0.5 + 2.5) / 12)


def test_alpha_regularization_l1_and_smooth_l0():
    alpha = torch.tensor([0.0, 0.0, 1.0, 1.0])
    l1_only = losses.alpha_regularization(alpha, l1_weight=2.0, l0_weight=0.0)
    assert l1_only.item() == pytest.approx(2.0 * 0.5)
    l0_only = losses.alpha_regularization(alpha, l1_weight=0.0, l0_weight=1.0)
    expected = (2 * (1 / (1 + math.exp(-5))) - 1) / 2  # zeros cost nothing, ones cost ~0.987
    assert l0_only.item() == pytest.approx(expected, rel=1e-5)
    # The surrogate saturates: a small alpha costs almost as much per unit as L1 would not.
    small = losses.alpha_regularization(torch.tensor([0.2]), 0.0, 1.0).item()
    assert small > 0.4


def test_trimap_has_unknown_band_around_mask():
    mask = torch.zeros(1, 1, 9, 9)
    mask[0, 0, 4, 4] = 1
    tri = losses.trimap(mask, band=2)[0, 0]
    assert tri[4, 4] == 1
    assert tri[4, 6] == 0 and tri[2, 2] == 0  # within 2 px (chessboard distance)
    assert tri[4, 7] == -1 and tri[0, 0] == -1
    assert torch.equal(losses.trimap(mask, band=0)[0, 0, 0, 0], torch.tensor(-1.0))


def test_mask_loss_balances_inside_and_outside_and_ignores_band():
    tri = torch.tensor([[1.0, 1.0, 0.0, -1.0, -1.0, -1.0]]).view(1, 1, 1, 6)
    perfect = torch.tensor([[1.0, 1.0, 0.7, 0.0, 0.0, 0.0]]).view(1, 1, 1, 6)
    assert losses.mask_loss(perfect, tri).item() == pytest.approx(0.0)
    # Errors are on the signed scale 2a - 1, so a wrong pixel costs 2.
    # All alpha zero: inside error 2 * 2 / (1 + 2), outside 0.
    zero = torch.zeros_like(perfect)
    assert losses.mask_loss(zero, tri).item() == pytest.approx(0.5 * 4 / 3)
    # All alpha one: inside 0, outside 2 * 3 / (1 + 3).
    assert losses.mask_loss(torch.ones_like(perfect), tri).item() == pytest.approx(0.5 * 6 / 4)
    # Alpha 0.5 is zero on the signed scale: one unit of error everywhere known.
    half = torch.full_like(perfect, 0.5)
    assert losses.mask_loss(half, tri).item() == pytest.approx(0.5 * (2 / 3 + 3 / 4))


def test_flow_loss_weighted_by_confidence():
    pred = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[1.0, 3.0]], [[1.0, 3.0]]]])
    conf = torch.tensor([[[[1.0, 0.0]]]])
    assert losses.flow_loss(pred, target, conf).item() == pytest.approx(2 * 1.0 / 4)


def test_warp_by_flow_pulls_next_frame_back():
    nxt = torch.zeros(1, 1, 5, 8)
    nxt[0, 0, 2, 5] = 1.0  # the object moved 2 px right from (2, 3)
    flow = torch.zeros(1, 2, 5, 8)
    flow[:, 0] = 2.0
    warped = warp_by_flow(nxt, flow)
    assert warped[0, 0, 2, 3].item() == pytest.approx(1.0)
    assert warped.sum().item() == pytest.approx(1.0)


def test_alpha_warp_loss_zero_for_consistent_motion_and_positive_otherwise():
    alpha_t = torch.zeros(1, 1, 1, 6, 10)
    alpha_t[..., 2:4, 2:4] = 1
    alpha_next = torch.roll(alpha_t, shifts=3, dims=-1)
    flow = torch.zeros(1, 1, 2, 6, 10)
    flow[:, :, 0] = 3.0
    assert losses.alpha_warp_loss(alpha_t, alpha_next, flow).item() == pytest.approx(0.0, abs=1e-6)
    # Without the flow, the 4 square pixels and the 4 shifted ones disagree: 8 of 60 pixels
    # off by 1, i.e. 2 on the signed scale.
    assert losses.alpha_warp_loss(alpha_t, alpha_next, torch.zeros_like(flow)).item() == pytest.approx(2 * 8 / 60)


def test_composite_order_is_back_to_front():
    background = torch.zeros(1, 3, 1, 1)
    red = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    blue = torch.tensor([0, 0, 1.0]).view(1, 3, 1, 1)
    half = torch.full((1, 1, 1, 1), 0.5)
    one = torch.ones(1, 1, 1, 1)
    # blue (second = front) fully covers red
    assert composite_over(background, [red, blue], [half, one]).flatten().tolist() == [0, 0, 1]
    # red in front at half alpha over opaque blue
    mixed = composite_over(background, [blue, red], [one, half]).flatten().tolist()
    assert mixed == pytest.approx([0.5, 0, 0.5])


def test_background_latent_is_sampled_through_homographies():
    """A frame shifted by 16 canvas px sees the latent shifted by exactly one latent cell."""
    model = Omnimatte(canvas_size=(64, 96), nf=8, seed=3, background="network", camera_adjustment=False, alpha_activation="tanh")
    height, width = 32, 48
    shift = np.array([[1, 0, 16], [0, 1, 0], [0, 0, 1]], float)
    homographies = np.stack([np.eye(3), shift])
    grid = torch.from_numpy(homography_grid(homographies, height, width, (64, 96)))
    views = model.frame_latent(grid)
    assert views.shape == (2, 13, height, width)
    # Interior columns: frame 1 at x equals frame 0 at x + 16.
    assert torch.allclose(views[1, :, 4:-4, 8:24], views[0, :, 4:-4, 24:40], atol=1e-5)
    # The background canvas the same way: sample_canvas of a ramp gives the canvas x.
    ramp = torch.arange(96, dtype=torch.float32).view(1, 1, 1, 96).expand(1, 1, 64, 96)
    seen = sample_canvas(ramp, grid)
    assert seen[0, 0, 10, 5].item() == pytest.approx(5.0)
    assert seen[1, 0, 10, 5].item() == pytest.approx(21.0)


def test_camera_flow_of_a_pan():
    homographies = np.stack([np.eye(3), np.array([[1, 0, -4], [0, 1, 2], [0, 0, 1]], float)])
    flow = camera_flow(homographies, 6, 8)
    # Frame 1 sits 4 px left and 2 px down on the canvas, so static content moves +4, -2.
    assert np.allclose(flow[0, 0], 4.0) and np.allclose(flow[0, 1], -2.0)
    assert np.allclose(flow[1], 0.0)


def test_model_outputs_and_static_background():
    model = Omnimatte(canvas_size=(64, 64), nf=8, background="network", camera_adjustment=False, alpha_activation="tanh")
    inputs = torch.randn(3, 2, 16, 32, 48)
    grid = torch.zeros(3, 32, 48, 2)
    out = model(inputs, grid, torch.zeros(3, 2, 32, 48))
    assert out["rgb"].shape == (3, 3, 32, 48)
    assert out["layer_alpha"].shape == (3, 2, 1, 32, 48)
    alpha = out["layer_alpha"].detach()
    assert float(alpha.min()) >= 0 and float(alpha.max()) <= 1
    # Identical grids see identical backgrounds: the background cannot depend on the frame.
    assert torch.allclose(out["background"][0], out["background"][2])


@pytest.mark.parametrize("activation", ["tanh", "clamp"])
def test_the_one_output_convolution_is_the_authors_two_padded_heads(activation: str):
    """The RGBA and flow heads as the authors write them (each a 4x4 convolution over the last features padded
    by one pixel before and two after), computed from the merged head's weights, on the U-Net's own features."""
    torch.manual_seed(0)
    net = OmnimatteUNet(nf=8, alpha_activation=activation)
    captured = {}
    net.decoder[-1].register_forward_hook(lambda module, args, output: captured.update(features=output))
    rgba, flow = net(torch.randn(2, 16, 64, 96))
    padded = F.pad(captured["features"], (1, 2, 1, 2))
    weight, bias = net.to_output.weight, net.to_output.bias
    authors_rgba = F.conv2d(padded, weight[:4], bias[:4])
    authors_flow = F.conv2d(padded, weight[4:], bias[4:])
    assert rgba.shape == (2, 4, 64, 96) and flow.shape == (2, 2, 64, 96)
    assert torch.allclose(rgba[:, :3], torch.tanh(authors_rgba[:, :3]), atol=1e-6)
    assert torch.allclose(rgba[:, 3:], signed_alpha(authors_rgba[:, 3:], activation), atol=1e-6)
    assert torch.allclose(flow, authors_flow, atol=1e-6)


def test_self_composited_alpha_is_the_authors_sparsity_input():
    """One layer: a^2. Two layers: a0^2 (1 - a1) + a1^2. Flat at zero, unlike the coverage 1 - prod(1 - a)."""
    a0, a1 = 0.3, 0.6
    alpha = torch.tensor([a0, a1]).view(1, 2, 1, 1, 1)
    assert losses.self_composited_alpha(alpha).item() == pytest.approx(a0**2 * (1 - a1) + a1**2)
    assert losses.alpha_coverage(alpha).item() == pytest.approx(1 - (1 - a0) * (1 - a1))
    faint = torch.full((1, 1, 1, 1, 1), 0.05, requires_grad=True)
    losses.alpha_regularization(losses.self_composited_alpha(faint), 1.0, 0.0).backward()
    composited_pull = faint.grad.item()
    faint.grad = None
    losses.alpha_regularization(losses.alpha_coverage(faint), 1.0, 0.0).backward()
    assert composited_pull == pytest.approx(0.1) and faint.grad.item() == pytest.approx(1.0)


def test_the_models_parts_take_keywords_whose_defaults_are_the_configs():
    """Omnimatte and its parts take keyword arguments only (the plate aside), with the defaults of the config's train
    section (TrainConfig's, which tests/test_train.py holds to config/config.yaml)."""
    config = TrainConfig()

    def keywords(constructor) -> dict:
        parameters = inspect.signature(constructor).parameters.values()
        return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}

    model = keywords(Omnimatte)
    assert set(model) == set(inspect.signature(Omnimatte).parameters)
    settings = ("nf", "latent_scale", "seed", "norm", "background", "camera_adjustment", "camera_brightness",
                "alpha_activation", "background_match_threshold", "canvas_levels")
    assert {name: model[name] for name in settings} == {name: getattr(config, name) for name in settings}
    unet = keywords(OmnimatteUNet)
    assert (unet["nf"], unet["norm"], unet["alpha_activation"]) == (config.nf, config.norm, config.alpha_activation)
    assert keywords(CameraAdjustment)["brightness"] == config.camera_brightness
    assert keywords(CanvasBackground)["levels"] == config.canvas_levels


def test_canvas_background_starts_as_its_plate_and_is_the_same_for_every_frame():
    plate = torch.rand(1, 3, 20, 36) * 2 - 1
    model = Omnimatte(canvas_size=(10, 18), nf=8, background="canvas", plate=plate, camera_adjustment=False,
                      alpha_activation="tanh")
    assert torch.allclose(model.render_background(), plate)
    # Viewed at the training scale, each training pixel sees the 2 x 2 plate pixels it covers: the plate area-averaged.
    assert model.canvas_footprint == 2
    view = model.view_background(model.render_background(), identity_grid(1, 10, 18, torch.device("cpu")), None,
                                 model.canvas_footprint)
    assert torch.allclose(view, F.avg_pool2d(plate, 2), atol=1e-5)
    grid = torch.zeros(3, 8, 12, 2)
    out = model(torch.randn(3, 1, 16, 8, 12), grid, torch.zeros(3, 2, 8, 12))
    assert torch.allclose(out["background"][0], out["background"][2])
    # Every pyramid level is learnt.
    out["rgb"].mean().backward()
    assert all(level.grad is not None and level.grad.abs().sum() > 0 for level in model.canvas.grids)
    with pytest.raises(ValueError, match="needs its starting plate"):
        Omnimatte(canvas_size=(10, 18), nf=8, background="canvas")


@pytest.mark.parametrize("footprint", [1, 2, 3])
def test_a_footprint_is_the_mean_of_bilinear_samples_one_pixel_apart(footprint: int):
    """sample_canvas with a footprint of k: at any fractional position, the mean of the k x k bilinear samples one
    canvas pixel apart around it (a k-pixel box), not a box at the canvas's own grid followed by a second blur."""
    canvas = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(1))
    grid = torch.rand(2, 7, 9, 2, generator=torch.Generator().manual_seed(2)) * 1.4 - 0.7  # clear of the border
    expected = torch.zeros(2, 3, 7, 9)
    for dy in range(footprint):
        for dx in range(footprint):
            step = torch.tensor([(dx - (footprint - 1) / 2) * 2 / 30, (dy - (footprint - 1) / 2) * 2 / 20])
            expected += F.grid_sample(canvas.expand(2, -1, -1, -1), grid + step, mode="bilinear",
                                      padding_mode="border", align_corners=False) / footprint**2
    assert torch.allclose(sample_canvas(canvas, grid, footprint), expected, atol=1e-5)
    if footprint == 1:
        assert torch.equal(sample_canvas(canvas, grid), expected)


def test_camera_adjustment_starts_as_no_adjustment_and_interpolates_between_keys():
    adjustment = CameraAdjustment(num_frames=25, brightness="field", frames_per_key=10)
    assert adjustment.brightness.shape[0] == 4  # keys at frames 0, 10, 20, 30
    frames = torch.tensor([0, 5, 24])
    brightness, offset = adjustment.fields(frames, identity_grid(3, 6, 8, torch.device("cpu")))
    assert torch.allclose(brightness, torch.ones(3, 1, 6, 8)) and torch.allclose(offset, torch.zeros(3, 2, 6, 8))
    assert adjustment.regularization().item() == 0.0
    with torch.no_grad():
        adjustment.brightness[1] = 2.0  # frame 10
        adjustment.brightness[3] = 2.0  # frame 30
    brightness, _ = adjustment.fields(frames, identity_grid(3, 6, 8, torch.device("cpu")))
    assert brightness[1].mean().item() == pytest.approx(1.5)  # frame 5: half way from key 0 to key 1
    assert brightness[2].mean().item() == pytest.approx(1.4)  # frame 24: 0.4 of the way from key 2 to key 3
    # A one-pixel offset moves the background view by one canvas pixel.
    model = Omnimatte(canvas_size=(8, 16), nf=8, background="network", camera_adjustment=False, alpha_activation="tanh")
    ramp = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 16).expand(1, 3, 8, 16)
    grid = identity_grid(1, 8, 16, torch.device("cpu"))
    view = model.view_background(ramp, grid, torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 8, 16))
    assert view[0, 0, 4, 3:10].tolist() == pytest.approx([4, 5, 6, 7, 8, 9, 10])


def test_camera_brightness_per_frame_is_one_scale_over_the_frame_the_field_is_not():
    """A shadow darkens part of the frame: a brightness field can follow it, one scale per frame cannot."""
    grid = identity_grid(1, 8, 14, torch.device("cpu"))
    frames = torch.tensor([0])
    field, per_frame = CameraAdjustment(num_frames=11, brightness="field"), CameraAdjustment(num_frames=11, brightness="frame")
    assert field.brightness.shape[1:] == (1, 4, 7) and per_frame.brightness.shape[1:] == (1, 1, 1)
    shadow = torch.ones(1, 1, 8, 14)
    shadow[..., 4:, 7:] = 0.6
    for adjustment in (field, per_frame):
        optimizer = torch.optim.Adam([adjustment.brightness], lr=0.05)
        for _ in range(200):
            optimizer.zero_grad()
            brightness, _ = adjustment.fields(frames, grid)
            (brightness - shadow).abs().mean().backward()
            optimizer.step()
    brightness_field, offset = field.fields(frames, grid)
    brightness_frame, _ = per_frame.fields(frames, grid)
    assert brightness_frame.shape == brightness_field.shape == (1, 1, 8, 14) and offset.shape == (1, 2, 8, 14)
    assert brightness_frame.std().item() < 1e-6  # the same everywhere
    assert brightness_field[..., 6, 12].item() < 0.75 < brightness_field[..., 1, 1].item()  # follows the shadow
    with pytest.raises(ValueError, match="unknown camera brightness"):
        CameraAdjustment(num_frames=11, brightness="pixel")


@pytest.mark.parametrize("activation", ["tanh", "clamp"])
def test_a_zero_alpha_grows_back_under_clamp_but_stays_saturated_under_tanh(activation: str):
    """Adam pulls an alpha to zero for 500 steps (the mask term outside the trimap), then the frame asks for
    alpha 0.5 there (a shadow away from the mask): only the clamp's alpha follows within 50 steps."""
    x = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=0.01)
    for target in [0.0] * 500 + [0.5] * 50:
        alpha = signed_alpha(x, activation) * 0.5 + 0.5
        loss = (alpha - target).abs().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    alpha = float(signed_alpha(x.detach(), activation) * 0.5 + 0.5)
    if activation == "clamp":
        assert alpha > 0.2
    else:
        assert alpha < 0.05


def test_clamp_alpha_is_linear_down_to_a_floor_left_only_upward_and_tanh_above_one_half():
    x = torch.tensor([-3.0, -3.0, -0.5, 2.0], requires_grad=True)
    value = signed_alpha(x, "clamp")
    value.backward(torch.tensor([1.0, -1.0, 1.0, 1.0]))
    assert torch.allclose(value, torch.tensor([-1.0, -1.0, -0.5, math.tanh(2.0)]))
    assert torch.allclose(x.grad, torch.tensor([0.0, -1.0, 1.0, 1.0 - math.tanh(2.0) ** 2]))
    with pytest.raises(ValueError, match="unknown alpha activation 'relu': choose from tanh, clamp"):
        signed_alpha(x, "relu")


def test_clamp_alpha_grows_only_where_released():
    x = torch.tensor([-3.0, -3.0], requires_grad=True)
    signed_alpha(x, "clamp", torch.tensor([True, False])).backward(torch.tensor([-1.0, -1.0]))
    assert x.grad.tolist() == [-1.0, 0.0]


def test_model_releases_zero_alpha_where_the_frame_differs_from_the_background():
    """With background_match_threshold, the frame passed in decides where a clamped zero alpha gets a gradient."""
    torch.manual_seed(0)
    model = Omnimatte(canvas_size=(32, 32), nf=8, background="canvas", plate=torch.zeros(1, 3, 32, 32),
                      alpha_activation="clamp", background_match_threshold=0.04, camera_adjustment=False)
    with torch.no_grad():
        model.net.to_output.bias[3] = -5.0  # every alpha a clamped zero
    inputs = torch.randn(1, 1, 16, 32, 32)
    grid = identity_grid(1, 32, 32, torch.device("cpu"))
    image = torch.zeros(1, 3, 32, 32)
    image[..., :, 16:] = 0.5  # the right half differs from the (black) background
    out = model(inputs, grid, torch.zeros(1, 2, 32, 32), image=image)
    assert float(out["layer_alpha"].detach().max()) == 0.0
    out["layer_alpha"].sum().neg().backward()  # ask for alpha everywhere
    assert model.net.to_output.bias.grad[3] < 0  # released on the right half...
    with torch.no_grad():
        model.net.zero_grad()
    out = model(inputs, grid, torch.zeros(1, 2, 32, 32), image=torch.zeros(1, 3, 32, 32))
    out["layer_alpha"].sum().neg().backward()
    assert float(model.net.to_output.bias.grad[3]) == 0.0  # ...and nowhere where the frame equals the background


def test_the_frame_matches_the_background_as_the_camera_adjustment_relights_it():
    """A frame that is the background darkened by an exposure the camera adjustment follows shows the background:
    no zero alpha is released there; unrelit, the same frame would release it everywhere."""
    torch.manual_seed(0)
    model = Omnimatte(canvas_size=(32, 32), nf=8, background="canvas", plate=torch.zeros(1, 3, 32, 32),
                      alpha_activation="clamp", background_match_threshold=0.04, num_frames=1,
                      camera_adjustment=True, camera_brightness="frame")
    with torch.no_grad():
        model.net.to_output.bias[3] = -5.0  # every alpha a clamped zero
    inputs = torch.randn(1, 1, 16, 32, 32)
    grid = identity_grid(1, 32, 32, torch.device("cpu"))
    image = torch.full((1, 3, 32, 32), -0.2)  # the grey plate (0.5) at 0.8 of its brightness (0.4)
    released = []
    for brightness in (1.0, 0.8):
        with torch.no_grad():
            model.camera.brightness.fill_(brightness)
        model.zero_grad()
        out = model(inputs, grid, torch.zeros(1, 2, 32, 32), frames=torch.zeros(1, dtype=torch.long), view_grid=grid,
                    image=image)
        out["layer_alpha"].sum().neg().backward()  # ask for alpha everywhere
        released.append(float(model.net.to_output.bias.grad[3]))
    assert released[0] < 0  # the plate as it is differs from the frame by 0.1
    assert released[1] == 0.0  # relit, it is the frame


@pytest.mark.parametrize("activation", ["tanh", "clamp"])
def test_canvas_weight_scales_what_a_pixel_teaches_the_canvas_unless_it_shows_the_background(activation: str):
    """A canvas_weight of 0 stops a pixel's error reaching the canvas, but not where the frame matches the
    background to within background_match_threshold; the rendered background and what the camera offset
    learns are the same either way."""
    plate = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model = Omnimatte(canvas_size=(8, 8), nf=8, background="canvas", plate=plate, alpha_activation=activation,
                      background_match_threshold=0.04, num_frames=1, camera_adjustment=True,
                      camera_brightness="frame")
    inputs = torch.zeros(1, 1, 16, 8, 8)
    grid = identity_grid(1, 8, 8, torch.device("cpu"))
    image = plate.clone()
    image[..., :, 4:] += 0.5  # the right half differs from the canvas; the left shows it
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    runs = []
    for canvas_weight in (None, torch.zeros(1, 1, 8, 8)):
        model.zero_grad()
        out = model(inputs, grid, torch.zeros(1, 2, 8, 8), frames=torch.zeros(1, dtype=torch.long), view_grid=grid,
                    image=image, canvas_weight=canvas_weight)
        (out["background"] * target).sum().backward()
        runs.append((out["background"].detach(), model.canvas.grids[0].grad.clone(), model.camera.offset.grad.clone()))
    (background, canvas_grad, offset_grad), (weighted_background, weighted_canvas_grad, weighted_offset_grad) = runs
    assert torch.equal(weighted_background, background)
    assert torch.equal(weighted_offset_grad, offset_grad) and (offset_grad != 0).any()
    assert (canvas_grad != 0).all()
    assert torch.equal(weighted_canvas_grad[..., :4], canvas_grad[..., :4])  # shows the background: teaches fully
    assert (weighted_canvas_grad[..., 4:] == 0).all()  # differs from it: not at all
