"""SAM, the segmentation model that turns a prompt into a mask: building it, loading its weights, prompting it.

The architectures are segment_anything's own (its `sam_model_registry`); the weights are read
here (see load_sam) so that a checkpoint saved on a GPU loads on a CPU machine too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def sam_model_types() -> list[str]:
    """The SAM architectures segment_anything builds: its registry's names, without its alias `default`."""
    from segment_anything import sam_model_registry

    return [name for name in sam_model_registry if name != "default"]


def sam_builder(model_type: str) -> Callable[..., Any]:
    """segment_anything's builder of SAM `model_type`; ValueError for a type it does not know."""
    from segment_anything import sam_model_registry

    if model_type not in sam_model_types():
        raise ValueError(f"unknown SAM model type '{model_type}' (known: {', '.join(sam_model_types())})")
    return sam_model_registry[model_type]


def load_sam(model_type: str, checkpoint: str | Path | None, device: str = "cpu") -> Any:
    """Build SAM `model_type` with segment_anything and load `checkpoint` into it, strictly.

    The state dict is read here (torch.load with map_location, weights only) rather
    than by segment_anything's builder so a checkpoint saved on a GPU also loads on a
    CPU machine; the architecture and load_state_dict are segment_anything's.
    Raises FileNotFoundError when there is no checkpoint: a SAM with random weights
    must never be used for real masks.
    """
    import torch

    builder = sam_builder(model_type)
    if checkpoint is None or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"SAM checkpoint {checkpoint} does not exist")
    model = builder(checkpoint=None)
    state = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # training checkpoints wrap the weights
    model.load_state_dict(state)
    model.eval()
    return model.to(device)


class SamSegmenter:
    """The `Segmenter` backed by SamPredictor; the image embedding is reused while the frame is the same.

    A box alone is unambiguous: SAM's single-mask answer. With points (a click is
    ambiguous; propagation always sends box and points) SAM's three multimask answers,
    best predicted score first, so the key frame takes the best score and propagation
    picks among the three by IoU. One decoder call per frame: on a CPU the decoder
    costs as much as the small encoder.
    """

    def __init__(self, model: Any) -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(model)
        self._image: np.ndarray | None = None
        self.encoder_seconds = 0.0
        self.encoded_frames = 0

    def _set_image(self, frame: np.ndarray) -> None:
        if self._image is not None and (self._image is frame or np.array_equal(self._image, frame)):
            return
        start = time.perf_counter()
        self.predictor.set_image(np.ascontiguousarray(frame), image_format="RGB")
        self.encoder_seconds += time.perf_counter() - start
        self.encoded_frames += 1
        self._image = frame

    def __call__(self, frame: np.ndarray, box: np.ndarray | None, points: np.ndarray | None,
                 labels: np.ndarray | None) -> np.ndarray:
        self._set_image(frame)
        prompt = {
            "box": None if box is None else np.asarray(box, np.float32),
            "point_coords": None if points is None else np.asarray(points, np.float32),
            "point_labels": None if labels is None else np.asarray(labels, np.int32),
        }
        masks, scores, _ = self.predictor.predict(**prompt, multimask_output=points is not None)
        return masks[np.argsort(-scores)].astype(bool)
