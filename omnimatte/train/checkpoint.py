"""Checkpoints, what they must match to be resumed, and stopping cleanly on SIGTERM (as SLURM sends)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import torch

from omnimatte.io import atomic_path
from omnimatte.model import Omnimatte
from omnimatte.render_switches import RENDER_ONLY
from omnimatte.train.schedule import LossWeights
from omnimatte.train.settings import TrainConfig
from omnimatte.train.stopping import StoppingRule
from omnimatte.train.video import VideoTensors


# Nothing the network background reads.
CANVAS_ONLY = ("canvas_learning_rate_fraction", "canvas_levels", "canvas_weight_once_reached")


def config_fingerprint(config: TrainConfig, video: VideoTensors, model: Omnimatte, inputs: str = "") -> dict[str, str]:
    """What a checkpoint must match to be resumed: the settings that shape training, the data's size and the
    model's parameters (names and shapes, so a checkpoint of an earlier layout starts over instead of failing
    to load), and apart from them the inputs' digest (`fingerprint.inputs_digest`), so the log can say which
    changed. Switches that only change how the trained model is rendered (RENDER_ONLY), and the canvas's
    settings under the network background, are left out, so that changing one does not throw away an
    unfinished run."""
    settings = dataclasses.asdict(config)
    for key in ("checkpoint_every", "device", "compile", *RENDER_ONLY):
        settings.pop(key)
    if config.background != "canvas":
        for key in CANVAS_ONLY:
            settings.pop(key)
    else:
        settings["effect_reach"] = video.effect_reach  # which frames its starting plate trusts
    settings["data"] = [list(video.frames.shape), list(video.masks.shape), list(video.canvas_size)]
    settings["parameters"] = [[name, list(value.shape)] for name, value in model.state_dict().items()]
    return {"settings": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16], "inputs": inputs}


def save_checkpoint(path: Path, model: Omnimatte, optimizer: torch.optim.Optimizer, step: int, weights: LossWeights,
                    generator: torch.Generator, history: list[dict], rule: StoppingRule,
                    fingerprint: dict[str, str]) -> None:
    """Everything a rerun needs to go on exactly where this run stopped (the stopping rule's checks and last check
    frames too), written atomically."""
    with atomic_path(path) as tmp:
        torch.save({
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "weights": dataclasses.asdict(weights),
            "generator": generator.get_state(),
            "history": history,
            "stopping": rule.state_dict(),
            "fingerprint": fingerprint,
        }, tmp)


class StopSignal:
    """A SIGTERM received during training: what SLURM sends on preemption and at the time limit."""

    def __init__(self) -> None:
        self.received: int | None = None


@contextlib.contextmanager
def catch_sigterm() -> Iterator[StopSignal]:
    """Inside, SIGTERM is recorded instead of killing the process, so training can checkpoint and stop between steps."""
    stop = StopSignal()

    def record(signum: int, frame: object) -> None:
        stop.received = signum

    previous = signal.signal(signal.SIGTERM, record)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
