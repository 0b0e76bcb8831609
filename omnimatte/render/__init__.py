"""Turning a trained model into the output contract's layers, one idea a file.

settings.py: RenderSettings, which steps run. pipeline.py: one rendering pass (render_pass: what its frames
share) and one frame, the network's output over the frame's background and then the steps in order:
sampled_background.py (each frame's background from the frames), alpha_upsampling.py (guided upsampling of
alpha trained below the working resolution), plate_matte.py, alpha_fit.py, core_fill.py, effect_claim.py (with
effect_motion.py), shadow_fit.py, stray_cut.py, copy_cut.py, overlap_merge.py, background_detail.py and
detail_transfer.py. writing.py: every frame written as the contract's PNGs.
"""

from omnimatte.render.pipeline import (RenderedFrame, RenderPass, SampledBackgrounds, frame_background, render_frame,
                                      render_pass)
from omnimatte.render.settings import RenderSettings
from omnimatte.render.writing import render_layers, tensor_to_uint8

__all__ = ["RenderPass", "RenderSettings", "RenderedFrame", "SampledBackgrounds", "frame_background", "render_frame",
           "render_layers", "render_pass", "tensor_to_uint8"]
