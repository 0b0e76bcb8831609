"""The copy cut: no layer keeps a copy of another object beyond its own object's reach.

A layer often holds a faint copy of another object: where that object stands, the network gives
this layer some alpha too (its inputs there, the other object's motion, look like its own), and
the stray cut keeps it, for alpha near any coarse mask stands supported. Summed over the clip
such a copy can outweigh what the layer holds of its own small object's effects, and it travels
with the layer into every edit: remove the other object and its ghost stays.

Beyond an object's reach (effect_reach object sizes from its coarse mask, the distance within
which the background fit, whose map the effect claim consults, and the diagnose stage expect an
object's effects; everywhere in a frame without the object) nothing the object causes lies on another
object's body that the other's layer holds itself. There the layer's alpha is cut: where another
object's coarse mask and its layer's alpha of at least HELD meet, outside the reach and outside
the layer's own coarse mask grown by one smoothing sigma (effect_claim.smoothing_sigma), so that
its own edge never loses alpha. An object's shadow or reflection on another within its reach
stays; so does anything where the other object's layer holds less than HELD (its own alpha
there is in doubt).
"""

from __future__ import annotations

import torch

from omnimatte.background_fit import within_reach
from omnimatte.imaging.morphology import square_max
from omnimatte.render.alpha_fit import masks_at
from omnimatte.render.effect_claim import smoothing_sigma

# Another object's layer holds its body where its alpha is at least this.
HELD = 0.5


@torch.no_grad()
def cut_copies(alpha: torch.Tensor, masks: torch.Tensor, reach: float) -> torch.Tensor:
    """Alpha (L, 1, H, W) with each layer's alpha cut on the other objects' held bodies beyond `reach` object sizes
    of its own object; coarse masks (L, 1, h, w) at any resolution."""
    if len(alpha) < 2:
        return alpha
    size = tuple(alpha.shape[-2:])
    inside = masks_at(masks, size)
    bodies = inside & (alpha >= HELD)
    radius = max(1, round(smoothing_sigma(*size)))
    grown = square_max(inside.float(), radius) > 0.5
    masks_np = inside[:, 0].cpu().numpy()
    cut = torch.zeros_like(inside)
    for layer in range(len(alpha)):
        others = torch.cat([bodies[:layer], bodies[layer + 1:]]).any(0)
        reached = torch.from_numpy(within_reach(masks_np[layer], reach)).to(inside.device)
        cut[layer] = others & ~reached & ~grown[layer]
    return alpha * ~cut
