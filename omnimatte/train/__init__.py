"""Stage 5, training, one idea a file: settings.py (every setting and the CPU's), video.py (the
upstream outputs as tensors and the canvas's starting plate), batch.py (frame pairs and
jitter), schedule.py (when weights and the learning rate change), stopping.py (when training is
done), objective.py (the loss terms summed), loop.py (the training loop), checkpoint.py (resume and SIGTERM),
curves.py (loss CSV and plot), render.py, alpha_upsampling.py, alpha_fit.py,
effect_claim.py and effect_motion.py (the output layers), stage.py (the stage: train,
render, write)."""

from omnimatte.train.loop import TrainingRun, build_model, train_model
from omnimatte.train.render import (RenderedFrame, RenderSettings, effect_motion, render_frame, render_layers,
                                    tensor_to_uint8)
from omnimatte.train.schedule import LossWeights, alpha_l1_off_step, steps_per_epoch
from omnimatte.train.settings import CPU_SETTINGS, TrainConfig
from omnimatte.train.stage import run_train
from omnimatte.train.video import VideoTensors, load_video

__all__ = ["CPU_SETTINGS", "LossWeights", "RenderSettings", "RenderedFrame", "TrainConfig", "TrainingRun",
           "VideoTensors",
           "alpha_l1_off_step", "build_model", "effect_motion", "load_video", "render_frame", "render_layers",
           "run_train", "steps_per_epoch", "tensor_to_uint8", "train_model"]
