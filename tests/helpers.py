"""Helpers the test files share, in one module so that no test file imports another
(pytest fixtures stay in conftest.py).

* Running the workflow: run_snakemake, the tiny demo's config (.test/config_tiny.yaml,
  which also runs by hand), the stages it runs, write_config for per-test overrides.
* Hand-made finished samples for the edit, export and report tests: exact layers, known
  answers. A scene is written in the output contract's layout (frames/, frames_info.json,
  homography/, omnimatte/), so the edits read it exactly as they read a trained sample.
* Snakemake's benchmark TSVs for the runtime report.
* `over`: straight-alpha compositing written out once, apart from the package's, for the
  tests to check the package's layers against.
* A small untrained SAM for the tests of the real SAM loading path (conftest's `tiny_sam` registers it).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from omnimatte.io import save_json, save_npy, write_frames

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------- running the workflow

TINY_CONFIG = REPO / ".test" / "config_tiny.yaml"
TINY = TINY_CONFIG.read_text()  # text, so a test can append its own keys or change a line
RULES = ("demo_clip", "frames", "flow", "masks", "homography", "background_fit", "train", "render", "diagnose",
         "composite", "evaluate")


def run_snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with `workdir` as working directory; output captured as text."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def write_config(workdir: Path, text: str, name: str = "extra.yaml") -> str:
    """Write `text` (dedented) to workdir/config/`name`, for --configfile; returns the path."""
    path = workdir / "config" / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# ----------------------------------------------------------------- a small SAM

TINY_SAM = "vit_tiny"


def build_sam_vit_tiny(checkpoint: str | None = None):
    """A small SAM made of segment_anything's own modules: the official prompt encoder, mask decoder and
    1024-pixel input, only the image encoder shrunk, so everything downstream of it runs the real code."""
    from segment_anything.build_sam import _build_sam

    return _build_sam(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
                      encoder_global_attn_indexes=[1], checkpoint=checkpoint)


# ----------------------------------------------------------------- Snakemake's timings and scores

BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, seconds: float, rss: str = "512.5") -> Path:
    """A rule's timing file as Snakemake's `benchmark:` writes it, taking `seconds` of wall time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + f"{seconds}\t0:00:01\t{rss}\t900\t400\t450\t0.1\t2.0\t85.0\t{seconds * 0.9}\n")
    return path


# ----------------------------------------------------------------- compositing, independently of the package


def over(background: np.ndarray, layers: Sequence[np.ndarray]) -> np.ndarray:
    """Straight-alpha RGBA layers (..., 4) stacked back to front over an opaque `background` (..., 3), in float64:
    each pixel becomes alpha * colour + (1 - alpha) * what lies below. Colours keep their units (0..255 for uint8
    images); alpha is a fraction, read from uint8 layers as value / 255."""
    image = np.asarray(background, np.float64)
    for layer in layers:
        layer = np.asarray(layer)
        alpha = layer[..., 3:].astype(np.float64) / (255.0 if layer.dtype == np.uint8 else 1.0)
        image = alpha * layer[..., :3].astype(np.float64) + (1.0 - alpha) * image
    return image


# ----------------------------------------------------------------- hand-made layered scenes

T, H, W = 12, 48, 64
BLUE = (40, 60, 230)


@dataclass
class Scene:
    """Straight-alpha uint8 layers (back to front) over a background, and their composite."""

    background: np.ndarray            # (T,H,W,3)
    layers: dict[str, np.ndarray]     # name -> (T,H,W,4)
    homographies: np.ndarray          # (T,3,3) frame -> canvas
    canvas_size: tuple[int, int]      # (width, height)

    @property
    def names(self) -> list[str]:
        return list(self.layers)

    @property
    def frames(self) -> np.ndarray:
        return np.rint(over(self.background, list(self.layers.values()))).astype(np.uint8)


def colourful_ground(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Saturated smooth colour noise, so grey and colour pixels are easy to tell apart."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 226, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def ball_x(t: int) -> int:
    """The red ball's left edge on frame t: it rolls 4 px a frame to the right."""
    return 2 + 4 * t


def ball_red(t: int) -> int:
    """The ball's red channel on frame t: it warms up a little each frame, so copies from different frames differ."""
    return 150 + 8 * t


def ball_and_box() -> Scene:
    """A red ball (rows 14-26, 8 px wide) rolling right with a soft dark shadow under it (rows 30-38,
    half alpha; layer 'ball', at the back) and a still blue box in front of its path (layer 'box',
    rows 10-30, columns 40-52); a static camera."""
    background = np.repeat(colourful_ground(H, W)[None], T, axis=0)
    ball = np.zeros((T, H, W, 4), np.uint8)
    box = np.zeros((T, H, W, 4), np.uint8)
    for t in range(T):
        x = ball_x(t)
        ball[t, 30:38, x:x + 12, 3] = 128              # the shadow: black at half alpha, outside the object
        ball[t, 14:26, x:x + 8, :3] = (ball_red(t), 30, 30)
        ball[t, 14:26, x:x + 8, 3] = 255
    box[:, 10:30, 40:52, :3] = BLUE
    box[:, 10:30, 40:52, 3] = 255
    return Scene(background, {"ball": ball, "box": box}, np.repeat(np.eye(3)[None], T, axis=0), (W, H))


def write_scene(scene: Scene, root: Path, fps: float = 24.0) -> Path:
    """Write the scene as results/{sample}/ would hold it; returns `root`."""
    frames = scene.frames
    write_frames(root / "frames", frames)
    count, height, width = frames.shape[:3]
    save_json(root / "frames_info.json", {"count": count, "width": width, "height": height, "fps": fps,
                                          "source_width": width, "source_height": height, "start": 0, "end": None,
                                          "stride": 1})
    save_npy(root / "homography" / "homographies.npy", scene.homographies)
    save_json(root / "homography" / "canvas.json", {"width": scene.canvas_size[0], "height": scene.canvas_size[1]})
    for name, layer in scene.layers.items():
        write_frames(root / "omnimatte" / "layers" / name / "rgba", layer)
    write_frames(root / "omnimatte" / "background", scene.background)
    write_frames(root / "omnimatte" / "reconstruction", frames)
    return root


def textured_ground(height: int, width: int) -> torch.Tensor:
    """Random ground (1, 3, H, W) in [-1, 1], no channel near black (levels 0.25..0.85), for the render-step tests."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, height, width, generator=generator) * 1.2 - 0.5


def box_mask(height: int, width: int, top: int, left: int, box_height: int, box_width: int) -> torch.Tensor:
    """A (1, 1, H, W) bool mask that is True on one rectangle."""
    mask = torch.zeros(1, 1, height, width, dtype=torch.bool)
    mask[..., top:top + box_height, left:left + box_width] = True
    return mask


def darkened(ground: torch.Tensor, share: torch.Tensor | float) -> torch.Tensor:
    """The ground (in [-1, 1]) with `share` of its light taken away (in 0..1 levels), back in [-1, 1]: a shadow."""
    return ((ground + 1.0) * 0.5 * (1.0 - share)) * 2.0 - 1.0
