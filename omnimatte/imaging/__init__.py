"""Image helpers every stage shares, so each picture is made one way: compositing and 8-bit
conversion (compositing.py), labels, checkerboards and panel grids (drawing.py), PSNR (metrics.py)
and luma and chroma (luma_chroma.py)."""

from omnimatte.imaging.compositing import over, premultiply, to_uint8
from omnimatte.imaging.drawing import LABEL_PAD, checkerboard, draw_label, label, over_checkerboard, text_size, tile
from omnimatte.imaging.metrics import psnr, psnr_from_mse, tensor_psnr

__all__ = ["LABEL_PAD", "checkerboard", "draw_label", "label", "over", "over_checkerboard", "premultiply", "psnr",
           "psnr_from_mse", "tensor_psnr", "text_size", "tile", "to_uint8"]
