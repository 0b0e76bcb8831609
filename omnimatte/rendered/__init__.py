"""The rendered benchmark suite: path-traced clips with ground truth, one idea a file.

scene.py (what a scene is), scenes.py (the suite's scenes, each stressing one thing), geometry.py (where
each object is in a frame), materials.py (textures), renderer.py (Mitsuba 3's calls), film.py (exposure
and the sRGB curve), ground_truth.py (layers and effects from renders that share a seed),
coarse_masks.py (masks as a segmenter gives them), clip.py (a clip folder: written and read),
cache.py (each scene rendered once, keyed by scene and renderer), removal.py (removal PSNR and its
baselines), suite.py (the benchmark's rendered suite), sheet.py (a contact sheet of the clips).
"""

from omnimatte.rendered.cache import cache_key, cache_root, clip_folder, ensure_clips
from omnimatte.rendered.clip import RenderedClip, load_rendered_clip, render_scene
from omnimatte.rendered.scene import Body, CameraPath, Filming, Floor, Lighting, Pond, Prop, Scene
from omnimatte.rendered.scenes import SCENES

__all__ = ["SCENES", "Body", "CameraPath", "Filming", "Floor", "Lighting", "Pond", "Prop", "RenderedClip", "Scene",
           "cache_key", "cache_root", "clip_folder", "ensure_clips", "load_rendered_clip", "render_scene"]
