"""Stage 3, coarse masks, one idea a file: prompts.py (an object's prompt checked and scaled),
sam.py (building SAM, loading its weights, prompting it), weights.py (the official checkpoints and
their download), propagation.py (a mask carried through the frames by the flow and SAM),
user_folders.py (a user's own mask folder), previews.py (the preview video's frames) and stage.py
(the stage). Omnimatte only needs rough masks: they tell each layer which object it owns, and
training grows them into the object's shadows and reflections."""

from omnimatte.masks.previews import PALETTE, compose_preview
from omnimatte.masks.prompts import SPEC_KEYS, Prompt, parse_prompt, prompt_problems
from omnimatte.masks.propagation import Segmenter, interior_points, mask_box, mask_iou, propagate_masks, warp_mask
from omnimatte.masks.sam import SamSegmenter, load_sam, sam_model_types
from omnimatte.masks.stage import run_masks
from omnimatte.masks.user_folders import load_mask_folder
from omnimatte.masks.weights import SAM_URLS, download_sam_weights

__all__ = ["PALETTE", "SAM_URLS", "SPEC_KEYS", "Prompt", "SamSegmenter", "Segmenter", "compose_preview",
           "download_sam_weights", "interior_points", "load_mask_folder", "load_sam", "mask_box", "mask_iou",
           "parse_prompt", "prompt_problems", "propagate_masks", "run_masks", "sam_model_types", "warp_mask"]
