"""Writing a trained model's layers, background and reconstruction as the output contract's PNGs."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from omnimatte.contract import OmnimatteFiles
from omnimatte.imaging import tensor_psnr
from omnimatte.io import atomic_dir, frame_name, save_json, write_png
from omnimatte.logs import get_logger
from omnimatte.model import Omnimatte
from omnimatte.render.pipeline import SampledBackgrounds, render_frame, render_pass
from omnimatte.render.settings import RenderSettings

if TYPE_CHECKING:  # the train package imports this one
    from omnimatte.train.video import VideoTensors

log = get_logger("render")


@torch.no_grad()
def render_layers(model: Omnimatte, video: VideoTensors, settings: RenderSettings, out_dir: Path,
                  sample: str, sampled: SampledBackgrounds | None = None) -> dict:
    """Render every frame and write the contract's layers, background and reconstruction (the sampled backgrounds
    from `sampled` when given: render_pass), and their summary: the reconstruction's PSNR of the network's
    composite and of the output (with every step), each layer's mean alpha and `settings`; returns the summary."""
    model.eval()
    shared = render_pass(model, video, settings, sampled)
    num_layers = len(video.object_names)
    alpha_sums = np.zeros(num_layers)
    psnr_model, psnr_output = [], []
    with atomic_dir(out_dir) as tmp, ThreadPoolExecutor(max_workers=1) as writer:
        files = OmnimatteFiles(tmp)
        folders = {name: files.layer(name) for name in video.object_names}
        for folder in [*folders.values(), files.background, files.reconstruction]:
            folder.mkdir(parents=True)
        # PNG encoding (which frees the GIL) runs beside the next frame's rendering.
        written = []

        def write(path: Path, image: np.ndarray) -> None:
            written.append(writer.submit(write_png, path, image, atomic=False))

        for t in tqdm(range(video.num_frames), desc=f"{sample}: render", unit="frame"):
            frame = render_frame(shared, t)
            target = video.output_frames[t:t + 1]
            psnr_model.append(tensor_psnr(frame.model_composite, target))
            psnr_output.append(tensor_psnr(frame.composite, target))
            for i, name in enumerate(video.object_names):
                rgba = torch.cat((frame.rgb[i] * 0.5 + 0.5, frame.alpha[i]))
                write(folders[name] / frame_name(t), tensor_to_uint8(rgba))
                alpha_sums[i] += float(frame.alpha[i].mean())
            write(files.background / frame_name(t), tensor_to_uint8(frame.background[0] * 0.5 + 0.5))
            write(files.reconstruction / frame_name(t), tensor_to_uint8(frame.composite[0] * 0.5 + 0.5))
        for job in written:
            job.result()
        summary = {"psnr_model": float(np.mean(psnr_model)), "psnr_output": float(np.mean(psnr_output)),
                   "mean_alpha": {name: float(alpha_sums[i] / video.num_frames)
                                  for i, name in enumerate(video.object_names)},
                   "render_settings": dataclasses.asdict(settings)}
        save_json(files.summary, summary)
    for name, mean_alpha in summary["mean_alpha"].items():
        if mean_alpha < 1e-3:
            log.warning("%s: layer '%s' collapsed to (almost) zero alpha (mean %.2g): the object was absorbed by the "
                        "background; check that it moves relative to the background and that its mask is right",
                        sample, name, mean_alpha)
    return summary


def tensor_to_uint8(chw: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image in [0, 1] as a contiguous uint8 (H, W, C) array, rounded."""
    image = (chw.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image)
