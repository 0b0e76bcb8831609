"""The stray cut: alpha neither near an object nor on anything the frame shows, nor joined to either, is cut."""

import pytest
import torch

from omnimatte.render.stray_cut import background_misses, cut_strays
from tests.helpers import box_mask, darkened, textured_ground

H, W = 128, 192  # smoothing sigma 2 px: masks grown by 4 px, evidence by 4 px


def box(top: int, left: int, height: int, width: int) -> torch.Tensor:
    return box_mask(H, W, top, left, height, width)


def scattered(where: torch.Tensor, level: float, seed: int = 1) -> torch.Tensor:
    """Faint alpha (1, 1, H, W) scattered over `where`: about one pixel in four at up to `level`."""
    generator = torch.Generator().manual_seed(seed)
    dots = torch.rand(1, 1, H, W, generator=generator)
    return torch.where(where & (dots > 0.75), dots * level, torch.zeros(()))


def test_faint_alpha_scattered_far_from_the_object_over_plain_background_is_cut():
    ground = textured_ground(H, W)
    body = box(40, 20, 30, 16)
    frame = torch.where(body, torch.tensor(0.9), ground)
    mask = body.float()
    far = box(20, 100, 80, 80)
    alpha = torch.maximum(body.float(), scattered(far, 0.08))
    cut = cut_strays(frame, ground, alpha, mask)
    assert float(alpha[0, 0][far[0, 0]].sum()) > 50
    assert float(cut[0, 0][far[0, 0]].abs().max()) == 0.0
    assert torch.equal(cut[0, 0][body[0, 0]], alpha[0, 0][body[0, 0]])


def test_a_shadow_away_from_its_object_keeps_its_alpha_and_so_does_its_faint_edge():
    ground = textured_ground(H, W)
    body = box(10, 20, 24, 16)  # a ball in the air, its shadow on the ground far below it
    shade = box(80, 100, 14, 40)
    frame = darkened(ground, 0.4 * shade.float())
    frame = torch.where(body, torch.tensor(0.9), frame)
    # the shadow's penumbra: alpha fading from 0.4 to 0.03 over 12 px to the right, where the frame shows little
    fade = torch.zeros(1, 1, H, W)
    fade[..., 80:94, 140:152] = torch.linspace(0.4, 0.03, 12)
    alpha = torch.maximum(torch.maximum(body.float(), 0.4 * shade.float()), fade)
    cut = cut_strays(frame, ground, alpha, body.float())
    assert torch.equal(cut[0, 0][shade[0, 0]], alpha[0, 0][shade[0, 0]])
    inner = (slice(81, 93), slice(140, 151))  # the tail but its outermost pixels, on the cut's soft edge
    assert torch.equal(cut[0, 0][inner], alpha[0, 0][inner])
    tail = fade[0, 0] > 0
    assert float(cut[0, 0][tail].sum()) > 0.9 * float(alpha[0, 0][tail].sum())


def test_alpha_near_any_objects_mask_stands_and_a_layer_without_anything_to_hold_is_emptied():
    ground = textured_ground(H, W)
    walker, ball = box(30, 20, 40, 16), box(60, 130, 16, 16)
    frame = torch.where(walker | ball, torch.tensor(0.9), ground)
    masks = torch.cat([walker.float(), ball.float()])
    # the ball's layer holds faint alpha on the walker's edge (objects shadow and mirror each other) and strays
    ring = box(28, 18, 44, 20) & ~walker
    strays = box(5, 60, 20, 50)
    ball_alpha = torch.maximum(ball.float(), torch.maximum(0.05 * ring.float(), scattered(strays, 0.08)))
    alpha = torch.cat([walker.float(), ball_alpha])
    cut = cut_strays(frame, ground, alpha, masks)
    assert torch.equal(cut[1, 0][ring[0, 0]], alpha[1, 0][ring[0, 0]])
    assert float(cut[1, 0][strays[0, 0]].abs().max()) == 0.0
    # a frame with no object in view and nothing beyond the background: every layer is emptied
    empty = cut_strays(ground, ground, alpha, torch.zeros_like(masks))
    assert float(empty.abs().max()) == 0.0


def test_strays_touching_the_object_through_alpha_stay_and_others_go_whatever_their_level():
    ground = textured_ground(H, W)
    body = box(40, 20, 30, 16)
    frame = torch.where(body, torch.tensor(0.9), ground)
    bridge = box(52, 36, 4, 60)  # faint alpha from the object's edge out over the ground
    island = box(90, 150, 10, 10)  # as faint, touching nothing
    alpha = torch.maximum(body.float(), 0.05 * (bridge | island).float())
    cut = cut_strays(frame, ground, alpha, body.float())
    assert torch.equal(cut[0, 0, 53:55, 36:95], alpha[0, 0, 53:55, 36:95])  # the bridge but its soft edge
    assert float(cut[0, 0][island[0, 0]].abs().max()) == 0.0
    below = torch.maximum(body.float(), 0.01 * bridge.float())  # below STRAY_ALPHA the bridge joins nothing
    cut_below = cut_strays(frame, ground, below, body.float())
    assert float(cut_below[0, 0, 53, 80:96].abs().max()) == 0.0


def test_alpha_on_what_moves_over_the_background_by_itself_is_cut_away_from_the_masks_only():
    """A standing pole sliding over the ground under parallax shows in the frame as much as a shadow does; where
    the background fit maps it as moving by itself, away from every mask it holds no alpha and joins nothing to
    support (the shadow beyond it), while near the mask the same map leaves alpha standing."""
    ground = textured_ground(H, W)
    body = box(30, 20, 40, 16)
    pole = box(10, 110, 100, 10)  # away from the object: well past its mask's margin
    shade = box(70, 120, 10, 30)  # a darkening touching the pole, on ground the frame shows nothing else on
    frame = torch.where(pole, torch.tensor(-0.8), darkened(ground, 0.3 * shade.float()))
    frame = torch.where(body, torch.tensor(0.9), frame)
    beside = box(30, 36, 40, 3)  # right of the body, within its mask's margin: a faint edge of the layer
    alpha = torch.maximum(body.float(), torch.maximum(pole.float(), 0.3 * shade.float()))
    alpha = torch.maximum(alpha, 0.5 * beside.float())
    mask = body.float()
    unmapped = cut_strays(frame, ground, alpha, mask)
    assert torch.equal(unmapped[0, 0][pole[0, 0]], alpha[0, 0][pole[0, 0]])  # the frame shows it: evidence
    cut = cut_strays(frame, ground, alpha, mask, (pole | beside)[0, 0])
    assert torch.equal(cut[0, 0][beside[0, 0]], alpha[0, 0][beside[0, 0]])
    inner = box(12, 112, 96, 6)[0, 0]  # the pole but its edge, on the cut's soft edge
    assert float(cut[0, 0][inner].abs().max()) == 0.0
    assert torch.equal(cut[0, 0][body[0, 0]], alpha[0, 0][body[0, 0]])
    # the darkening is on the frame's evidence of its own and stays, though it touches the pole
    core = box(72, 124, 6, 22)[0, 0]
    assert torch.equal(cut[0, 0][core], alpha[0, 0][core])
    with pytest.raises(ValueError, match="no object causes must be bool at the alpha's size"):
        cut_strays(frame, ground, alpha, mask, (pole | beside)[0, 0].T)
    with pytest.raises(ValueError, match="no object causes must be bool at the alpha's size"):
        cut_strays(frame, ground, alpha, mask, (pole | beside)[0, 0].float())


def test_where_the_learnt_background_took_in_a_pole_that_has_gone_no_layer_mends_it():
    """On ground something moving by itself crossed, where the frame shows only the background: a pole the learnt
    background holds at one place, which the fit's plate (the ground) does not, is where the learnt background misses;
    a faint shading the plate shares with it is not, and nothing is judged outside the crossed ground."""
    ground = textured_ground(H, W)
    canvas = torch.where(box(20, 120, 90, 10), torch.tensor(-0.8), ground)  # the learnt background keeps a pole
    canvas = darkened(canvas, 0.05 * box(100, 20, 20, 40).float())
    plate = darkened(ground, 0.05 * box(100, 20, 20, 40).float())
    plate_view = ((plate[0] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    crossed = torch.ones(H, W, dtype=torch.bool)
    misses = background_misses(plate_view, canvas, crossed)
    pole = box(24, 122, 82, 6)[0, 0]
    assert bool(misses[pole].all())
    assert not bool(misses[box(100, 20, 20, 40)[0, 0]].any())
    assert not bool(background_misses(plate_view, canvas, box(0, 0, 40, 40)[0, 0]).any())
    # The layer that paints the ground back over that pole loses it there, the object's own alpha stays.
    body = box(30, 20, 40, 16)
    alpha = torch.maximum(body.float(), box(20, 120, 90, 10).float())
    frame = torch.where(body, torch.tensor(0.9), ground)
    kept = cut_strays(frame, canvas, alpha, body.float(), misses)
    assert float(kept[0, 0][pole].abs().max()) == 0.0 and torch.equal(kept[0, 0][body[0, 0]], alpha[0, 0][body[0, 0]])
    unmapped = cut_strays(frame, canvas, alpha, body.float())
    assert torch.equal(unmapped[0, 0][pole], alpha[0, 0][pole])  # the frame differs from the learnt background there
