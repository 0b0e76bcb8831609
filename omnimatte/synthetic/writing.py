"""Writing a clip in the layout the pipeline reads (video.mp4, masks/) beside its
ground truth (gt/), and the demo command that renders and writes one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnimatte.io import save_json, write_frames, write_video
from omnimatte.logs import get_logger
from omnimatte.synthetic.clip import Clip, render_clip
from omnimatte.synthetic.presets import PRESETS


def write_clip(clip: Clip, out_dir: Path) -> None:
    """Write a clip as the pipeline's input (video.mp4, masks/) and its ground truth (gt/).

    out_dir/video.mp4, out_dir/masks/{object}/00000.png..., out_dir/gt/frames/ (the
    lossless composite), gt/background/, gt/layers/{object}/rgba/, gt/effects/{object}/,
    gt/info.json.
    """
    out_dir = Path(out_dir)
    write_video(out_dir / "video.mp4", clip.frames, clip.fps)
    for name in clip.object_names:
        write_frames(out_dir / "masks" / name, clip.masks[name])
    gt = out_dir / "gt"
    write_frames(gt / "frames", clip.frames)
    write_frames(gt / "background", clip.background)
    for name in clip.object_names:
        write_frames(gt / "layers" / name / "rgba", clip.layers[name])
        write_frames(gt / "effects" / name, clip.effects[name])
    info = {
        "preset": clip.preset,
        "description": PRESETS[clip.preset].description if clip.preset in PRESETS else "",
        "n_frames": clip.n_frames,
        "width": clip.width,
        "height": clip.height,
        "fps": clip.fps,
        "seed": clip.seed,
        "objects": list(clip.object_names),
        "alpha": "straight; frames = layers composited over background, back to front",
        "camera_world_to_frame": (np.round(clip.camera, 6) + 0.0).tolist(),  # + 0.0: no "-0.0"
    }
    save_json(gt / "info.json", info)


def make_demo(
    out_dir: Path | str,
    preset: str = "dog",
    n_frames: int = 48,
    width: int = 448,
    height: int = 256,
    seed: int = 0,
) -> None:
    """Render a preset and write it to `out_dir` (see write_clip), logging what was written."""
    log = get_logger("demo")
    clip = render_clip(preset, n_frames, width, height, seed)
    out_dir = Path(out_dir)
    write_clip(clip, out_dir)
    log.info(
        "wrote synthetic clip %r (%d frames, %dx%d, %.0f fps, seed %d) to %s: video.mp4, masks for %s, ground truth in gt/",
        preset, clip.n_frames, clip.width, clip.height, clip.fps, seed, out_dir, ", ".join(clip.object_names),
    )
