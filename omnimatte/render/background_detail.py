"""Background detail: where the frame shows nothing but the background, the background is the frame itself.

The learnt background is one canvas for the whole clip, seen through each frame's homography:
its texture has gone through two resamplings and the network's smoothing, it holds none of the
frame's own grain or codec noise, and it cannot move. Where no layer holds alpha and the
background fit finds nothing there but the background (BackgroundFit.background_only: the
registered background explains the frame to within the clip's noise and a registration error
across its texture, or the background moves there by itself: parallax, water, an unmasked
mover, which no object causes), the frame's own pixels are the best plate there is: a removal or
a new background keeps the footage's grain and sharpness, and whatever moves by itself, everywhere
the object never touched.

Anything else stays out: an effect no layer took (the tail of a shadow), a misfit the fit cannot
put down to the background, the objects' grown masks. There the model's background stays, so the
plate never bakes in an object's effect and the diagnose stage still sees what no layer explains.
The frame is blended in over a Gaussian edge of BLEND_SIGMA pixels on the free side.
"""

from __future__ import annotations

import torch

from omnimatte.render.blur import gaussian_blur
from omnimatte.render.effect_claim import FREE_ALPHA

#: The frame's pixels are blended into the model's background over a Gaussian edge of this sigma (pixels).
BLEND_SIGMA = 1.0


def frame_share(alpha: torch.Tensor, background_only: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) in [0, 1]: how much of the frame goes into its background. 1 where the layers' alpha (L, 1, H, W)
    together holds nothing and the frame shows nothing but the background (`background_only`, (H, W) in [0, 1]),
    falling to 0 as the layers' combined alpha reaches FREE_ALPHA or as `background_only` does, and softened over
    BLEND_SIGMA on the free side of where it falls."""
    held = 1.0 - torch.prod(1.0 - alpha, dim=0, keepdim=True)
    share = (1.0 - held / FREE_ALPHA).clamp(0.0, 1.0) * background_only.to(alpha)[None, None]
    # Blended over the free side of the edge only: no frame pixel goes where a layer holds or the fit objects.
    return torch.minimum(gaussian_blur(share, BLEND_SIGMA), share)


def add_frame_detail(frame: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor,
                     background_only: torch.Tensor) -> torch.Tensor:
    """The background (1, 3, H, W) in [-1, 1] with the frame (1, 3, H, W) blended in by frame_share."""
    share = frame_share(alpha, background_only)
    return background + share * (frame - background)
