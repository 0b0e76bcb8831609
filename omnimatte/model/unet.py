"""The authors' U-Net, shared by every foreground layer (and by the network background)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omnimatte.model.alpha_activation import signed_alpha

LATENT_CHANNELS = 13
INPUT_CHANNELS = 3 + LATENT_CHANNELS  # layer id mask, flow (2), latent


NORMS = ("group", "batch")


def _norm(channels: int, kind: str) -> nn.Module:
    """GroupNorm (the default) or the authors' BatchNorm.

    With GroupNorm a layer's output does not depend on what else is in the batch, so
    rendering one frame sees exactly what training saw in a batch of frames.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4), channels)
    raise ValueError(f"unknown norm {kind!r}: choose from {', '.join(NORMS)}")


class _Down(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str | None = "group", dilation: int = 1) -> None:
        if dilation == 1:
            conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
        else:
            conv = nn.Conv2d(cin, cout, 4, stride=1, dilation=dilation, padding=3 * dilation // 2)  # "same" for even dilation
        layers: list[nn.Module] = [conv]
        if norm:
            layers.append(_norm(cout, norm))
        layers.append(nn.LeakyReLU(0.2, inplace=True) if norm else nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Up(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), _norm(cout, norm),
                         nn.ReLU(inplace=True))


class OmnimatteUNet(nn.Module):
    """The authors' U-Net: five stride-2 stages, two dilated ones, skip connections.

    Maps (N, in_channels, H, W) to RGBA in [-1, 1] (colour through tanh, alpha through
    `alpha_activation`, see alpha_activation.py) and a 2-channel flow, both at the
    input resolution; inputs whose sides are not multiples of 32 are padded and the
    outputs cropped back. The two output heads always run in float32, also under bf16
    autocast: near alpha 0 the tanh saturates, and in bf16 its gradient there rounds
    to nothing, so faint alpha (a soft shadow) could never grow back.
    """

    def __init__(self, *, in_channels: int = INPUT_CHANNELS, nf: int = 64, norm: str = "group",
                 alpha_activation: str = "clamp") -> None:
        super().__init__()
        signed_alpha(torch.zeros(()), alpha_activation)  # refuse an unknown activation now, not at the first step
        self.alpha_activation = alpha_activation
        self.encoder = nn.ModuleList([
            _Down(in_channels, nf, norm=None),
            _Down(nf, nf * 2, norm),
            _Down(nf * 2, nf * 4, norm),
            _Down(nf * 4, nf * 4, norm),
            _Down(nf * 4, nf * 4, norm),
            _Down(nf * 4, nf * 4, norm, dilation=2),
            _Down(nf * 4, nf * 4, norm, dilation=2),
        ])
        self.decoder = nn.ModuleList([
            _Up(nf * 8, nf * 4, norm),
            _Up(nf * 8, nf * 4, norm),
            _Up(nf * 8, nf * 2, norm),
            _Up(nf * 4, nf, norm),
            _Up(nf * 2, nf, norm),
        ])
        # The authors' two heads (RGBA and flow, each a 4x4 convolution over the last features padded by one pixel
        # before and two after) as one convolution with six outputs, padded by two on every side and
        # cropped by one before: the same function, but the full-resolution features are neither copied
        # into a padded tensor nor read by two backward passes (on the CPU those were a third of a step).
        rgba_head, flow_head = nn.Conv2d(nf, 4, 4), nn.Conv2d(nf, 2, 4)  # initialised as the authors' two
        self.to_output = nn.Conv2d(nf, 6, 4, padding=2)
        with torch.no_grad():
            self.to_output.weight.copy_(torch.cat((rgba_head.weight, flow_head.weight)))
            self.to_output.bias.copy_(torch.cat((rgba_head.bias, flow_head.bias)))

    def forward(self, x: torch.Tensor, alpha_release: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`alpha_release` (N, 1, H, W) bool: where a zero alpha may grow (see alpha_activation.py)."""
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % 32, (-width) % 32
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        if self.encoder[0][0].weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # match the weights' layout (faster on GPUs)
        skips = []
        for index, block in enumerate(self.encoder):
            x = block(x)
            if index < 5:
                skips.append(x)
        for block in self.decoder:
            x = block(torch.cat((x, skips.pop()), 1))
        with torch.autocast(x.device.type, enabled=False):
            # Contiguous before the activations: on the CPU, tanh over the cropped channels-last slice took 4x as long.
            output = self.to_output(x.float())[..., 1:height + 1, 1:width + 1].contiguous()
            colour, alpha, flow = output.split((3, 1, 2), 1)  # one backward (a cat), not one zero-filled tensor each
            rgba = torch.cat((torch.tanh(colour), signed_alpha(alpha, self.alpha_activation, alpha_release)), 1)
        return rgba, flow


