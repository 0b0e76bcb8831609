"""Turning a trained model into the output contract's layers, one idea a file.

settings.py: RenderSettings, which steps run. pipeline.py: one frame, the network's output and then the
steps in order: alpha_upsampling.py (guided upsampling of alpha trained below the working resolution),
plate_matte.py, alpha_fit.py, core_fill.py, effect_claim.py (with effect_motion.py), shadow_fit.py and
detail_transfer.py. writing.py: every frame written as the contract's PNGs.
"""

from omnimatte.render.pipeline import RenderedFrame, effect_motion_for, frame_background, render_frame
from omnimatte.render.settings import RenderSettings
from omnimatte.render.writing import render_layers, tensor_to_uint8

__all__ = ["RenderSettings", "RenderedFrame", "effect_motion_for", "frame_background", "render_frame", "render_layers",
           "tensor_to_uint8"]
