"""The background detail: the frame's own pixels become the background where nothing but the background shows."""

import torch

from omnimatte.render.background_detail import BLEND_SIGMA, add_frame_detail, frame_share
from omnimatte.render.effect_claim import FREE_ALPHA

H, W = 24, 32


def layers_alpha(*regions: tuple[slice, slice, float]) -> torch.Tensor:
    """One layer per region (rows, columns, alpha), (L, 1, H, W)."""
    alpha = torch.zeros(len(regions), 1, H, W)
    for i, (rows, columns, value) in enumerate(regions):
        alpha[i, 0, rows, columns] = value
    return alpha


def test_the_frame_goes_where_no_layer_holds_alpha_and_the_fit_finds_only_background():
    alpha = layers_alpha((slice(4, 12), slice(4, 12), 0.9), (slice(14, 20), slice(20, 28), 0.04))
    background_only = torch.ones(H, W)
    background_only[:, 28:] = 0.0  # where the fit finds more than the background (an effect no layer took, a misfit)
    share = frame_share(alpha, background_only)[0, 0]
    assert share.shape == (H, W) and share.min() >= 0 and share.max() <= 1
    reach = int(3 * BLEND_SIGMA) + 1  # the blend's reach
    assert torch.all(share[4:12, 4:12] == 0)  # a layer holds it
    assert torch.all(share[:, 28:] == 0)  # the fit finds more than the background
    assert torch.allclose(share[12 + reach:, :20 - reach], torch.ones(H - 12 - reach, 20 - reach))  # free, background_only
    # Faint alpha lets the frame through in part, less as it rises to FREE_ALPHA.
    assert 0.4 < float(share[17, 24]) < 1 - 0.04 / FREE_ALPHA + 1e-5
    # The blend softens the free side of an edge only.
    assert 0 < float(share[8, 12]) < float(share[8, 13]) < 1


def test_the_background_takes_the_frame_by_its_share():
    alpha = layers_alpha((slice(0, 12), slice(0, W), 1.0))
    background_only = torch.ones(H, W)
    frame, background = torch.full((1, 3, H, W), 0.5), torch.full((1, 3, H, W), -0.5)
    detailed = add_frame_detail(frame, background, alpha, background_only)
    assert torch.equal(detailed[..., :12, :], background[..., :12, :])
    assert torch.allclose(detailed[..., 16:, :], frame[..., 16:, :])
    # Without the fit's word for it, nothing changes.
    assert torch.equal(add_frame_detail(frame, background, alpha, torch.zeros(H, W)), background)
