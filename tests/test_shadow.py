"""Training quality: on a small version of the demo, the dog's layer takes its shadow.

The coarse mask covers only the dog. The background is static on its canvas, so the
moving shadow can only be explained by a foreground layer, and the mask, flow and
alpha-warp terms tie it to the dog. The settings are the CPU ones at full size, on 16
frames: 1000 steps, the alpha L1 term off after 800. About two minutes on 2 CPU cores.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from omnimatte.benchmark import far_leak, prepare_synthetic
from omnimatte.evaluate import effect_recall
from omnimatte.render import RenderSettings, effect_motion_for, render_frame
from omnimatte.train import CPU_SETTINGS, TrainConfig, train_model


@pytest.mark.slow
def test_dog_layer_captures_its_shadow_and_background_stays_clean(tmp_path: Path):
    torch.set_num_threads(2)
    device = torch.device("cpu")
    config = TrainConfig(**{**CPU_SETTINGS, "scale": 1.0, "steps": 1000}, device="cpu", checkpoint_every=10_000, cpu={})
    clip, video, _ = prepare_synthetic(tmp_path, "dog", 16, 192, 112, config.trimap_band, device, flow_weights="none",
                                       canvas_plate=config.background == "canvas")
    model, history = train_model("shadow", video, config, tmp_path / "checkpoint.pt", device)

    model.eval()
    canvas = model.render_background(full_size=True)
    settings = RenderSettings.from_config(config).without("detail_transfer")
    motion = effect_motion_for(model, video, canvas)
    frames = [render_frame(model, video, t, canvas, settings, motion) for t in range(video.num_frames)]
    alpha = np.stack([f.alpha[0, 0].numpy() for f in frames]).astype(np.float64)
    background = np.stack([(f.background[0].permute(1, 2, 0).numpy() * 0.5 + 0.5) for f in frames])

    truth = clip.layers["dog"][..., 3].astype(np.float64) / 255
    effect = clip.effects["dog"].astype(np.float64) / 255
    mask = clip.masks["dog"] > 0
    assert (effect * ~mask).sum() > 0.9 * effect.sum()  # the shadow really lies outside the coarse mask

    # Most of the shadow is in the dog's alpha ...
    recall = effect_recall(alpha, effect)
    assert recall > 0.6, recall
    # ... little alpha lands away from the dog and its shadow ...
    assert far_leak(alpha, truth) < 0.15
    # ... and the shadow is not baked into the background: where the shadow is strong,
    # the background is about as bright as the clean plate, not darkened like the frame.
    clean = clip.background.astype(np.float64) / 255
    shadowed = clip.frames.astype(np.float64) / 255
    strong = effect > 0.3
    darkening_in_frames = (clean - shadowed).mean(-1)[strong].mean()
    darkening_in_background = (clean - background).mean(-1)[strong].mean()
    assert darkening_in_background < 0.25 * darkening_in_frames, (darkening_in_background, darkening_in_frames)
    assert history[-1]["total"] < history[0]["total"]
