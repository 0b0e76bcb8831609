"""Picking the torch device for the stages that run networks (flow, masks, train)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnimatte.errors import StageError

if TYPE_CHECKING:
    import torch


def resolve_device(stage: str, sample: str, name: str) -> torch.device:
    """'auto' is CUDA when a GPU is visible, else the CPU; an unusable device is a StageError.

    torch is loaded here, not when the module is: the masks stage imports this module but needs torch only
    for SAM, and loading torch is a second or more of a stage that copies a folder of masks."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise StageError(stage, sample, f"unknown device '{name}'", "use device 'auto', 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StageError(stage, sample, f"device '{name}' requested but CUDA is not available", "use device 'auto' or 'cpu'")
    return device
