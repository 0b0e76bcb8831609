"""The render cache: each scene rendered once into a folder keyed by the scene's description, the
renderer's version and the ground truth's construction, then reused.

The folder is resources/rendered/ by default (outside git), or $OMNIMATTE_RENDER_CACHE, or what the
benchmark's --render-cache names. A clip folder is {scene}-{key}; one whose key differs (the scene, the
renderer or GROUND_TRUTH_VERSION changed) is never reused: it renders anew beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from omnimatte.io import load_json
from omnimatte.logs import get_logger
from omnimatte.rendered.clip import INFO, render_scene
from omnimatte.rendered.renderer import renderer_version
from omnimatte.rendered.scene import Scene

DEFAULT_CACHE = Path("resources/rendered")
CACHE_VARIABLE = "OMNIMATTE_RENDER_CACHE"
# Bump when what a clip folder holds, or how its ground truth is made, changes (clip.py, ground_truth.py,
# coarse_masks.py, film.py, geometry.py, materials.py, renderer.py): every cached clip then renders anew.
GROUND_TRUTH_VERSION = 1

log = get_logger("rendered")


def cache_root(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: `path`, else $OMNIMATTE_RENDER_CACHE, else resources/rendered."""
    return Path(path or os.environ.get(CACHE_VARIABLE) or DEFAULT_CACHE)


def cache_key(scene: Scene, renderer: str | None = None) -> str:
    """16 hex digits of the hash of the scene's description (less the line that says what it stresses and the
    homography stage's canvas limit, which do not change the render), the renderer and GROUND_TRUTH_VERSION."""
    description = {key: value for key, value in scene.describe().items() if key not in ("stresses", "max_canvas_scale")}
    content = {"scene": description, "renderer": renderer or renderer_version(), "ground_truth": GROUND_TRUTH_VERSION}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def clip_folder(root: Path, scene: Scene, key: str | None = None) -> Path:
    return Path(root) / f"{scene.name}-{key or cache_key(scene)}"


def is_cached(folder: Path, key: str) -> bool:
    """Whether `folder` holds a whole clip of this key (folders appear only when complete)."""
    info = folder / INFO
    return info.is_file() and load_json(info).get("key") == key


def ensure_clips(scenes: list[Scene], root: Path, progress: bool = True) -> dict[str, Path]:
    """Each scene's clip folder, rendering the missing ones (a progress bar per clip); logs what each took."""
    folders = {}
    for scene in scenes:
        key = cache_key(scene)
        folder = clip_folder(root, scene, key)
        if is_cached(folder, key):
            log.info("rendered: %s from the cache (%s)", scene.name, folder)
        else:
            log.info("rendered: rendering %s (%d frames %dx%d, %d spp) into %s", scene.name, scene.filming.n_frames,
                     scene.filming.width, scene.filming.height, scene.filming.spp, folder)
            began = time.perf_counter()
            info = render_scene(scene, folder, key, progress)
            log.info("rendered: %s took %.0f s (%d renders)", scene.name, time.perf_counter() - began, info["renders"])
        folders[scene.name] = folder
    return folders
