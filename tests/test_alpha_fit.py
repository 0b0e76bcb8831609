"""The alpha fit (train/alpha_fit.py): it lowers alpha to what the frame shows of a layer and nothing else."""

import pytest
import torch

from omnimatte.model import composite_over
from omnimatte.train.alpha_fit import fit_alphas_to_frame


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
