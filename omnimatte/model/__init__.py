"""The Omnimatte model: the U-Net (unet.py) and its alpha activation (alpha_activation.py), the two backgrounds (background.py), the camera
adjustment (camera_adjustment.py), compositing and resampling (compositing.py), and the
model that puts them together (omnimatte.py)."""

from omnimatte.model.alpha_activation import ALPHA_ACTIVATIONS
from omnimatte.model.background import BACKGROUNDS, CanvasBackground
from omnimatte.model.camera_adjustment import BRIGHTNESS_KINDS, CameraAdjustment
from omnimatte.model.compositing import colour_difference, composite_over, identity_grid, sample_canvas, warp_by_flow
from omnimatte.model.omnimatte import Omnimatte, relight
from omnimatte.model.unet import INPUT_CHANNELS, LATENT_CHANNELS, NORMS, OmnimatteUNet

__all__ = ["ALPHA_ACTIVATIONS", "BACKGROUNDS", "BRIGHTNESS_KINDS", "CanvasBackground", "CameraAdjustment",
           "INPUT_CHANNELS", "LATENT_CHANNELS", "NORMS",
           "Omnimatte", "OmnimatteUNet", "colour_difference", "composite_over", "identity_grid", "relight", "sample_canvas", "warp_by_flow"]
