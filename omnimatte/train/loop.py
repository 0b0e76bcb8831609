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
from omnimatte.render.plate_matte import noise_aware_threshold
from omnimatte.train.batch import Batch
from omnimatte.train.checkpoint import StopSignal, config_fingerprint, save_checkpoint
from omnimatte.train.host_memory import keep_freed_memory
from omnimatte.train.objective import LOSS_NAMES, PROGRESS_LABELS, compute_losses
from omnimatte.train.schedule import (
    LossWeights,
    alpha_l1_off_step,
    decay_end_step,
    learning_rate_factor,
    steps_per_epoch,
)
from omnimatte.train.settings import TrainConfig
from omnimatte.train.stopping import StoppingRule
from omnimatte.train.video import VideoTensors

STAGE = "train"
log = get_logger(STAGE)


def training_match_threshold(video: VideoTensors, config: TrainConfig) -> float:
    """Within what colour difference training takes a frame pixel as showing the background: the setting
    (train.background_match_threshold; 0 keeps the match off) or, on grainy footage, NOISE_MARGIN times the clip's
    background noise at the training size (video.background_noise), as the plate matte rises above a frame's."""
    if config.background_match_threshold <= 0:
        return 0.0
    return noise_aware_threshold(config.background_match_threshold, video.background_noise)


def build_model(video: VideoTensors, config: TrainConfig, device: torch.device) -> Omnimatte:
    """The model the settings describe, for this video, on `device`."""
    # The latent keeps its cells per working-resolution canvas pixel at any training scale.
    model = Omnimatte(canvas_size=video.canvas_size, nf=config.nf, latent_scale=config.latent_scale * config.scale,
                      seed=config.seed, norm=config.norm, background=config.background,
                      plate=None if video.plate is None else video.plate.cpu(),
                      num_frames=video.num_frames, camera_adjustment=config.camera_adjustment,
                      camera_brightness=config.camera_brightness,
                      alpha_activation=config.alpha_activation,
                      background_match_threshold=training_match_threshold(video, config),
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
    """The optimiser's groups, each with the fraction of the learning rate it takes: first the network (and the
    camera adjustment) at the full rate, then a canvas background at train.canvas_learning_rate_fraction of it.
    The learning rate's decay (schedule.learning_rate_factor) applies to the first group only."""
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


@dataclass
class TrainingRun:
    """What train_model returns: the trained model, the logged losses, the stopping rule's checks, and why and
    when training stopped."""

    model: Omnimatte
    history: list[dict]
    checks: list[dict]
    stop_reason: str
    stop_step: int
    seconds: float


def train_model(sample: str, video: VideoTensors, config: TrainConfig, checkpoint_path: Path,
                device: torch.device, on_step: Callable[[int, Omnimatte], None] | None = None,
                stop: StopSignal | None = None, inputs: str = "") -> TrainingRun:
    """Fit the model until the stopping rule says it is done (stopping.py), resuming from `checkpoint_path` when
    it holds an unfinished run of the same settings and inputs (`inputs`: the digest of the files `video` was
    read from).

    `on_step(step, model)` is called after every step (the benchmark scores the layers with it).
    Once `stop` has received a signal, the current step is checkpointed and the process exits with 128 + signal.
    """
    fresh = start_training(video, config, device)
    model, optimizer, generator, weights = fresh.model, fresh.optimizer, fresh.generator, fresh.weights
    rule = StoppingRule(video, config, model)
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
            rule.load_state_dict(state["stopping"])
            history = state["history"]
            start = state["step"]
            log.info("%s: resuming from step %d (%s)", sample, start, checkpoint_path)
        else:
            log.warning("%s: starting over: %s; ignoring %s", sample, why_not_resumed(state.get("fingerprint"), fingerprint),
                        checkpoint_path)

    step_fn = torch.compile(model) if config.compile else model
    batch_size = min(config.batch_size, video.num_frames - 1)  # as optimisation_step draws them, for the log
    epoch_steps = steps_per_epoch(video.num_frames, config.batch_size)
    if start == 0:
        log.info("%s: %d pairs a step (%d steps an epoch), about %d steps expected (%d to %d): the alpha L1 term off "
                 "after step %d%s; every %d steps the layers of %d frames are checked, and training stops once "
                 "every phase has run and %d checks in a row change less than the tolerances", sample, batch_size,
                 epoch_steps, config.steps, config.min_steps, config.max_steps, alpha_l1_off_step(config),
                 f", the learning rate down to {config.final_learning_rate_fraction:g} of itself by step "
                 f"{config.steps}" if decay_end_step(config) else "", config.stop_check_every,
                 len(rule.frames.indices), config.stop_patience)
    began = time.perf_counter()
    elapsed_before = history[-1]["seconds"] if history else 0.0
    log_every = max(1, min(50, config.steps // 100))
    model.train()
    progress = tqdm(initial=start, total=max(config.steps, start), desc=f"{sample}: train", unit="step")
    stop_reason = ""
    done = start
    while not stop_reason:
        factor = learning_rate_factor(done, config)
        for index, group in enumerate(optimizer.param_groups):
            # The decay lets the network's layers settle; the canvas (the second group) keeps sharpening at its rate.
            group["lr"] = config.learning_rate * group["rate_fraction"] * (factor if index == 0 else 1.0)
        terms = optimisation_step(model, step_fn, optimizer, video, config, weights, generator)
        rule.follow(model)
        done += 1
        progress.update()
        # Reading a loss back waits for the device, so it happens only to log, for the mask term's switch
        # (in the first epochs) and at the checks.
        read_mask = done % epoch_steps == 0 and weights.waiting_for_mask_threshold()
        checked = rule.due(done)
        logged = done % log_every == 0 or checked or done == config.max_steps
        if logged or read_mask:
            values = {name: float(terms[name].detach()) for name in LOSS_NAMES}
            if not math.isfinite(values["total"]):
                raise StageError(STAGE, sample, f"the loss became {values['total']} at step {done} "
                                 f"({', '.join(f'{k}={v:.3g}' for k, v in values.items())})",
                                 "lower train.learning_rate, or check the flow and masks for broken frames; "
                                 f"delete {checkpoint_path} to start over")
        mask_error = values["mask"] / weights.mask if read_mask else None
        for change in weights.update(done, epoch_steps, mask_error, config):
            log.info("%s: step %d (epoch %d): %s", sample, done, done // epoch_steps, change)
        seconds = elapsed_before + time.perf_counter() - began
        if checked:
            stop_reason = rule.check(done, seconds, model, weights.phases_done(done, config)) or ""
            if rule.checks:
                last = rule.checks[-1]
                per_layer = ", ".join(f"{name} {share:.4f}" for name, share in last["layer_alpha_change"].items())
                log.info("%s: check at step %d: alpha changed %.4f%s, reconstruction %.5f (tolerances %g, %g); "
                         "%d in a row within them%s", sample, done, last["alpha_change"],
                         f" ({per_layer})" if len(last["layer_alpha_change"]) > 1 else "",
                         last["reconstruction_change"], config.stop_alpha_tolerance,
                         config.stop_reconstruction_tolerance, rule.settled_checks(),
                         "" if last["phases_done"] else "; the schedule still runs")
        if not stop_reason and done >= config.max_steps:
            moving = rule.still_moving()
            stop_reason = (f"the ceiling: train.max_steps ({config.max_steps}) before the layers settled"
                           + (f" (still moving at the last check: {moving})" if moving else ""))
        if done >= progress.total and not stop_reason:
            progress.total = min(config.max_steps, done + config.stop_check_every)  # the rule extends the run
            progress.refresh()
        if logged:
            history.append({"step": done, "seconds": round(seconds, 3), **values,
                            "lambda_mask": weights.mask, "lambda_alpha_l1": weights.alpha_l1,
                            "learning_rate": config.learning_rate * factor})
            postfix = {PROGRESS_LABELS[name]: f"{value:.4f}" for name, value in values.items()}
            if rule.checks:
                postfix["settled"] = f"{rule.settled_checks()}/{config.stop_patience}"
            progress.set_postfix(postfix)
        if on_step is not None:
            on_step(done, model)
        if done % config.checkpoint_every == 0 and not stop_reason:
            save_checkpoint(checkpoint_path, model, optimizer, done, weights, generator, history, rule, fingerprint)
        if stop is not None and stop.received is not None and not stop_reason:
            save_checkpoint(checkpoint_path, model, optimizer, done, weights, generator, history, rule, fingerprint)
            log.warning("%s: stopped by %s after step %d; checkpoint written to %s, the next run resumes from it",
                        sample, signal.Signals(stop.received).name, done, checkpoint_path)
            raise SystemExit(128 + stop.received)
    progress.total = done
    progress.close()
    seconds = elapsed_before + time.perf_counter() - began
    log.info("%s: training stopped after step %d (%.0f s): %s", sample, done, seconds, stop_reason)
    return TrainingRun(model, history, rule.checks, stop_reason, done, round(seconds, 3))
