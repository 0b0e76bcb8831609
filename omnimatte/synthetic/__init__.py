"""Synthetic clips with exact ground-truth layers: the offline demo and the benchmark.

A clip is built from reusable parts, one module each:

* textures: a ground texture (a large static "world" image: pebbly meadow, marble tiles),
* camera_paths: per frame, a similarity transform from world to frame pixels (pan,
  zoom and roll, or none; the background of frame t is the ground seen through it),
* sprites: objects drawn procedurally in their own pixel grid (a dog, a walker, a
  car, a ball), placed on the ground by a track (tracks: a world position and a gait
  phase per frame),
* effects: what each object does to the scene that its coarse mask does not cover: a
  soft cast shadow, a reflection in a glossy floor, a trailing dust cloud.

A preset (presets, registered in ``PRESETS``) puts these together into a scene; clip
renders it, writing writes it. Ground truth is exact by construction: each object's
layer is its sprite composited over its effects (one straight-alpha RGBA image), and
the frame is every quantized layer composited "over" the quantized background, back
to front::

    frame = a * rgb + (1 - a) * background

so ``frames`` matches the stored layers and background to within rounding (0.5 level).
"""

from omnimatte.synthetic.clip import Clip, render_clip
from omnimatte.synthetic.presets import PRESETS
from omnimatte.synthetic.writing import make_demo, write_clip

__all__ = ["PRESETS", "Clip", "make_demo", "render_clip", "write_clip"]
