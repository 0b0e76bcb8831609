"""Stage 5, training, one idea a file: settings.py (every setting and the CPU's), video.py (the
upstream outputs as tensors and the canvas's starting plate), batch.py (frame pairs and
jitter), schedule.py (when weights and the learning rate change), objective.py (the
loss terms summed), loop.py (the training loop), checkpoint.py (resume and SIGTERM),
curves.py (loss CSV and plot), host_memory.py (the CPU allocator), stage.py (the stage: train,
then render the layers with omnimatte.render, and write)."""

from omnimatte.train.loop import build_model, train_model
from omnimatte.train.schedule import LossWeights, alpha_l1_off_step, steps_per_epoch
from omnimatte.train.settings import CPU_SETTINGS, TrainConfig
from omnimatte.train.stage import run_train
from omnimatte.train.video import VideoTensors, load_video

__all__ = ["CPU_SETTINGS", "LossWeights", "TrainConfig", "VideoTensors", "alpha_l1_off_step", "build_model",
           "load_video", "run_train", "steps_per_epoch", "train_model"]
