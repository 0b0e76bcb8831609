"""A rendered clip on disk: rendering a scene into a folder with its ground truth, and reading it back.

Layout of a clip folder (the render cache holds one per scene, cache.py):

    video.mp4                   the input, as a user's video: the frames through an H.264 round trip
    masks/{object}/00000.png    coarse masks, uint8 0/255 (coarse_masks.py)
    gt/frames/                  the frames as rendered (lossless)
    gt/background/              the clean plate: the frame with no object (same seed: untouched pixels equal)
    gt/layers/{object}/rgba/    each object's true layer: coverage, then its effect (ground_truth.py)
    gt/effects/{object}/        the effect's alpha alone, outside the object
    gt/coverage/{object}/       its visible coverage in the frame (anti-aliased, hidden by what is in front)
    gt/coverage_alone/{object}/ its coverage in the frame with it alone (hidden only by props)
    gt/alone/{object}/          the frame with this object alone
    gt/without/{object}/        the frame without this object: what removing it should give
    gt/unexplained/             where one homography a frame cannot explain the background (props under a
                                translating camera, a pond), the share of each pixel; black elsewhere
    gt/info.json                the scene, the objects back to front, the renderer, each frame's gain,
                                camera pose and the seconds rendering took

gt/ is what the evaluate stage reads (background/, layers/, effects/, info.json), as for synthetic clips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from omnimatte.io import atomic_dir, frame_name, load_json, read_frames, read_video, save_json, write_png, write_video
from omnimatte.rendered.coarse_masks import coarse_masks
from omnimatte.rendered.film import develop, exposure_gains, quantize
from omnimatte.rendered.geometry import body_primitives, centre_depth
from omnimatte.rendered.ground_truth import EFFECT_FLOOR, EFFECT_SMOOTHING, object_layer
from omnimatte.rendered.renderer import SceneRenderer, frame_seed, renderer_version
from omnimatte.rendered.scene import Scene
from omnimatte.synthetic import Clip

INFO = "gt/info.json"


def check_layer_order(scene: Scene) -> None:
    """Refuse a scene whose bodies, listed back to front, are not always further the earlier they come:
    the layers' order is fixed over a clip, so the scene must keep it."""
    n = scene.filming.n_frames
    for t in range(n):
        eye, target = scene.camera.pose(t, n)
        depths = [centre_depth(body_primitives(body, t, n), eye, target) for body in scene.bodies]
        if any(front >= back for back, front in zip(depths, depths[1:])):
            raise ValueError(f"scene {scene.name!r}: in frame {t} the bodies {scene.object_names} are not back to "
                             f"front (depths {np.round(depths, 2).tolist()} m); reorder them or their tracks")


def unexplained_parts(scene: Scene) -> list[str]:
    """What of the background one homography a frame cannot explain: the props when the camera translates
    (parallax), and the pond (it moves by itself)."""
    parts = [prop.name for prop in scene.props] if scene.camera.translates else []
    return parts + (["pond"] if scene.pond is not None else [])


def render_scene(scene: Scene, out_dir: Path, key: str, progress: bool = True) -> dict:
    """Render every frame of `scene` and its ground truth into `out_dir` (the layout above, written whole or
    not at all); return its info."""
    check_layer_order(scene)
    began = time.perf_counter()
    renderer = SceneRenderer(scene)
    gains = exposure_gains(scene)
    names = scene.object_names
    f = scene.filming
    visible = {name: np.zeros((f.n_frames, f.height, f.width), np.float32) for name in names}
    frames = np.zeros((f.n_frames, f.height, f.width, 3), np.uint8)
    unexplained = unexplained_parts(scene)
    renders = 0
    with atomic_dir(out_dir) as tmp:
        gt = tmp / "gt"
        for t in tqdm(range(f.n_frames), desc=f"render {scene.name}", unit="frame", disable=not progress):
            def shot(bodies: list[str]) -> np.ndarray:
                nonlocal renders
                renders += 1
                return quantize(develop(renderer.render(t, bodies), gains[t]))

            frames[t] = shot(names)
            plate = shot([])
            name = frame_name(t)
            write_png(gt / "frames" / name, frames[t])
            write_png(gt / "background" / name, plate)
            groups = [[n] for n in names] + ([unexplained] if unexplained else [])
            shares = np.concatenate([renderer.coverage(t, names, groups[i:i + 3]) for i in range(0, len(groups), 3)],
                                    axis=2)
            for i, name_i in enumerate(names):
                others = [n for n in names if n != name_i]
                alone = frames[t] if not others else shot([name_i])
                without = plate if not others else shot(others)
                visible[name_i][t] = shares[..., i]
                own = shares[..., i] if not others else renderer.coverage(t, [name_i], [[name_i]])[..., 0]
                rgba, effect = object_layer(alone / 255.0, plate / 255.0, own)
                write_png(gt / "layers" / name_i / "rgba" / name, quantize(rgba))
                write_png(gt / "effects" / name_i / name, quantize(effect))
                write_png(gt / "coverage" / name_i / name, quantize(shares[..., i]))
                write_png(gt / "coverage_alone" / name_i / name, quantize(own))
                write_png(gt / "alone" / name_i / name, alone)
                write_png(gt / "without" / name_i / name, without)
            share = shares[..., len(names)] if unexplained else np.zeros((f.height, f.width))
            write_png(gt / "unexplained" / name, quantize(share))
        for index, name_i in enumerate(names):
            for t, mask in enumerate(coarse_masks(visible[name_i], f, index)):
                write_png(tmp / "masks" / name_i / frame_name(t), mask)
        write_video(tmp / "video.mp4", frames, f.fps, crf=f.crf)
        poses = [scene.camera.pose(t, f.n_frames) for t in range(f.n_frames)]
        info = {"scene": scene.name, "stresses": scene.stresses, "key": key, "renderer": renderer_version(),
                "objects": names, "n_frames": f.n_frames, "width": f.width, "height": f.height, "fps": f.fps,
                "unexplained": unexplained, "renders": renders, "render_seconds": round(time.perf_counter() - began, 1),
                "gains": np.round(gains, 6).tolist(), "seeds": [frame_seed(scene, t) for t in range(f.n_frames)],
                "camera": [{"eye": np.round(e, 6).tolist(), "target": np.round(g, 6).tolist()} for e, g in poses],
                "effect": {"smoothing_px": EFFECT_SMOOTHING, "floor": EFFECT_FLOOR},
                "alpha": "straight; each layer over the clean plate gives the frame with that object alone",
                "description": scene.describe()}
        save_json(tmp / INFO, info)
    return info


@dataclass
class RenderedClip:
    """A clip read back from its folder: `clip` in the synthetic suite's terms (its frames are the decoded
    input video, what the pipeline sees), the renders without each object, the unexplained map and info."""

    folder: Path
    clip: Clip
    without: dict[str, np.ndarray]
    unexplained: np.ndarray
    info: dict


def load_rendered_clip(folder: Path) -> RenderedClip:
    """Read a rendered clip folder (as render_scene wrote it)."""
    folder = Path(folder)
    info = load_json(folder / INFO)
    names = info["objects"]
    gt = folder / "gt"
    frames = read_video(folder / "video.mp4")
    if len(frames) != info["n_frames"]:
        raise ValueError(f"{folder / 'video.mp4'} holds {len(frames)} frames, its info says {info['n_frames']}")
    clip = Clip(frames=frames, background=read_frames(gt / "background"),
                layers={n: read_frames(gt / "layers" / n / "rgba", mode="rgba") for n in names},
                effects={n: read_frames(gt / "effects" / n, mode="gray") for n in names},
                masks={n: read_frames(folder / "masks" / n, mode="gray") for n in names},
                fps=info["fps"], object_names=names, preset=info["scene"], seed=info["description"]["filming"]["seed"])
    return RenderedClip(folder, clip, {n: read_frames(gt / "without" / n) for n in names},
                        read_frames(gt / "unexplained", mode="gray"), info)
