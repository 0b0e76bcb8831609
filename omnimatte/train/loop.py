"""The training loop: batches, the objective, the schedule, logging, checkpoints and stopping."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from omnimatte.errors import StageError
from omnimatte.fingerprint import why_not_resumed
from omnimatte.logs import get_logger
from omnimatte.model import Omnimatte
from omnimatte.train.batch import Batch
from omnimatte.train.checkpoint import StopSignal, config_fingerprint, save_checkpoint
from omnimatte.train.host_memory import keep_freed_memory
from omnimatte.train.objective import LOSS_NAMES, compute_losses
from omnimatte.train.schedule import LossWeights, alpha_l1_off_step, learning_rate_factor, steps_per_epoch
from omnimatte.train.settings import TrainConfig
from omnimatte.train.video import VideoTensors

STAGE = "train"
log = get_logger(STAGE)


def build_model(video: VideoTensors, config: TrainConfig, device: torch.device) -> Omnimatte:
    """The model the settings describe, for this video, on `device`."""
    # The latent keeps its cells per working-resolution canvas pixel at any training scale.
    model = Omnimatte(canvas_size=video.canvas_size, nf=config.nf, latent_scale=config.latent_scale * config.scale,
                      seed=config.seed, norm=config.norm, background=config.background,
                      plate=None if video.plate is None else video.plate.cpu(),
                      num_frames=video.num_frames, camera_adjustment=config.camera_adjustment,
                      camera_brightness=config.camera_brightness,
                      alpha_activation=config.alpha_activation,
                      background_match_threshold=config.background_match_threshold,
                      canvas_levels=config.canvas_levels).to(device)
    if config.channels_last:  # faster on GPUs, and by about a quarter with the CPU's oneDNN convolutions too
        model = model.to(memory_format=torch.channels_last)
    return model


@dataclass(kw_only=True)
class TrainingState:
    """What a run starts from (a checkpoint restores each, with the history and the step): the model, its
    optimiser, the batch generator and the schedule's loss weights."""

    model: Omnimatte
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    weights: LossWeights


def parameter_groups(model: Omnimatte, config: TrainConfig) -> list[dict]:
    """The optimiser's groups, each with the fraction of the learning rate it takes: the network (and the
    camera adjustment) at the full rate, a canvas background at train.canvas_learning_rate_fraction of it."""
    canvas = list(model.canvas.parameters()) if model.canvas is not None else []
    in_canvas = {id(parameter) for parameter in canvas}
    groups = [([p for p in model.parameters() if id(p) not in in_canvas], 1.0)]
    if canvas:
        groups.append((canvas, config.canvas_learning_rate_fraction))
    return [{"params": params, "rate_fraction": fraction, "lr": config.learning_rate * fraction}
            for params, fraction in groups]


def start_training(video: VideoTensors, config: TrainConfig, device: torch.device) -> TrainingState:
    """A fresh run of the settings on this video: seeded model, Adam, generator and the schedule's first weights."""
    if device.type == "cpu":
        keep_freed_memory()  # a quarter to a third of a CPU step was page faults (host_memory.py)
    torch.manual_seed(config.seed)
    model = build_model(video, config, device)
    return TrainingState(model=model, optimizer=torch.optim.Adam(parameter_groups(model, config), lr=config.learning_rate),
                         generator=torch.Generator(device=device).manual_seed(config.seed),
                         weights=LossWeights(mask=config.lambda_mask, alpha_l1=config.lambda_alpha_l1))


def optimisation_step(model: Omnimatte, step_fn: Callable, optimizer: torch.optim.Optimizer, video: VideoTensors,
                      config: TrainConfig, weights: LossWeights, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One step: draw a batch of frame pairs, render it (`step_fn`: the model, or its compiled form), and descend
    the objective. Returns the loss terms, still on the device."""
    pairs = video.num_frames - 1
    indices = torch.randperm(pairs, generator=generator, device=generator.device)[:min(config.batch_size, pairs)]
    batch = Batch(video=video, model=model, indices=indices, config=config, generator=generator)
    with torch.autocast(generator.device.type, dtype=torch.bfloat16, enabled=config.bf16):
        out = step_fn(batch.inputs, batch.background_grid, batch.background_flow, batch.frame_indices,
                      batch.view_grid, batch.image, batch.canvas_weight)
    out = {k: v.float() for k, v in out.items()}
    terms = compute_losses(out, batch, weights, config, model)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    optimizer.step()
    return terms


def train_model(sample: str, video: VideoTensors, config: TrainConfig, checkpoint_path: Path,
                device: torch.device, on_step: Callable[[int, Omnimatte], None] | None = None,
                stop: StopSignal | None = None, inputs: str = "") -> tuple[Omnimatte, list[dict]]:
    """Fit the model, resuming from `checkpoint_path` when it holds an unfinished run of the same settings
    and inputs (`inputs`: the digest of the files `video` was read from).

    `on_step(step, model)` is called after every step (the benchmark scores the layers with it).
    Once `stop` has received a signal, the current step is checkpointed and the process exits with 128 + signal.
    """
    fresh = start_training(video, config, device)
    model, optimizer, generator, weights = fresh.model, fresh.optimizer, fresh.generator, fresh.weights
    fingerprint = config_fingerprint(config, video, model, inputs)
    history: list[dict] = []
    start = 0
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"].cpu())
            weights = LossWeights(**state["weights"])
            history = state["history"]
            start = state["step"]
            log.info("%s: resuming from step %d of %d (%s)", sample, start, config.steps, checkpoint_path)
        else:
            log.warning("%s: starting over: %s; ignoring %s", sample, why_not_resumed(state.get("fingerprint"), fingerprint),
                        checkpoint_path)

    step_fn = torch.compile(model) if config.compile else model
    batch_size = min(config.batch_size, video.num_frames - 1)  # as optimisation_step draws them, for the log
    epoch_steps = steps_per_epoch(video.num_frames, config.batch_size)
    l1_off = alpha_l1_off_step(config, video.num_frames)
    if start == 0:
        log.info("%s: %d steps of %d pairs (%d steps an epoch); the alpha L1 term switches off after step %d "
                 "(epoch %.0f), leaving %d steps (%.0f%%) after it", sample, config.steps, batch_size, epoch_steps,
                 l1_off, l1_off / epoch_steps, max(0, config.steps - l1_off),
                 100 * max(0, config.steps - l1_off) / config.steps)
    began = time.perf_counter()
    elapsed_before = history[-1]["seconds"] if history else 0.0
    log_every = max(1, min(50, config.steps // 100))
    model.train()
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=f"{sample}: train", unit="step")
    for step in progress:
        rate = config.learning_rate * learning_rate_factor(step, l1_off, config)
        for group in optimizer.param_groups:
            group["lr"] = rate * group["rate_fraction"]
        terms = optimisation_step(model, step_fn, optimizer, video, config, weights, generator)
        done = step + 1
        # Reading a loss back waits for the device, so it happens only to log and, in the
        # first epochs, for the mask term's switch.
        epoch_end = done % epoch_steps == 0
        read_mask = epoch_end and weights.waiting_for_mask_threshold()
        logged = done % log_every == 0 or done == config.steps
        if logged or read_mask:
            values = {name: float(terms[name].detach()) for name in LOSS_NAMES}
            if not math.isfinite(values["total"]):
                raise StageError(STAGE, sample, f"the loss became {values['total']} at step {done} "
                                 f"({', '.join(f'{k}={v:.3g}' for k, v in values.items())})",
                                 "lower train.learning_rate, or check the flow and masks for broken frames; "
                                 f"delete {checkpoint_path} to start over")
        mask_error = values["mask"] / weights.mask if read_mask else None
        for change in weights.update(done, epoch_steps, l1_off, mask_error, config):
            log.info("%s: step %d (epoch %d): %s", sample, done, done // epoch_steps, change)
        if logged:
            history.append({"step": done, "seconds": round(elapsed_before + time.perf_counter() - began, 3), **values,
                            "lambda_mask": weights.mask, "lambda_alpha_l1": weights.alpha_l1, "learning_rate": rate})
            progress.set_postfix({k[:5]: f"{v:.4f}" for k, v in values.items()})
        if on_step is not None:
            on_step(done, model)
        if done % config.checkpoint_every == 0 and done < config.steps:
            save_checkpoint(checkpoint_path, model, optimizer, done, weights, generator, history, fingerprint)
        if stop is not None and stop.received is not None:
            save_checkpoint(checkpoint_path, model, optimizer, done, weights, generator, history, fingerprint)
            log.warning("%s: stopped by %s after step %d of %d; checkpoint written to %s, the next run resumes from it",
                        sample, signal.Signals(stop.received).name, done, config.steps, checkpoint_path)
            raise SystemExit(128 + stop.received)
    progress.close()
    return model, history
