"""Stage 5: fit the Omnimatte model to one video and render its layers.

The whole video lives on the training device as tensors; each step draws a batch of
frame pairs (t, t+1), jitters them with one random zoom-and-crop per pair, renders
all layers in one forward pass and applies the paper's losses. Checkpoints are
written atomically every few hundred steps and a rerun resumes from the newest.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import itertools
import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from omnimatte import losses
from omnimatte.devices import resolve_device
from omnimatte.errors import StageError
from omnimatte.fingerprint import inputs_digest, why_not_resumed
from omnimatte.homography import canvas_coordinates
from omnimatte.io import (
    _imwrite,
    atomic_dir,
    atomic_path,
    frame_name,
    list_frames,
    read_frames,
    save_json,
)
from omnimatte.logs import get_logger
from omnimatte.model import Omnimatte, composite_over

STAGE = "train"
log = get_logger(STAGE)

LOSS_NAMES = ("total", "reconstruction", "alpha_reg", "mask", "flow", "alpha_warp")
# The loss weights that change, logged beside the losses, and how the loss plot names them.
SCHEDULE_LABELS = {"lambda_mask": "mask term", "lambda_alpha_l1": "alpha L1"}

# On the CPU, a step of the paper's network and batch at 448x256 takes seconds, and
# the alpha L1 term stays on for 200 epochs, until which the layers cannot take the
# effects; these settings (train.cpu in config/config.yaml) reach that point and go
# on past it in minutes: a narrower network on half-size frames, a smaller batch.
CPU_SETTINGS = {"nf": 16, "batch_size": 4, "scale": 0.5, "steps": 3000}


@dataclass
class TrainConfig:
    """Training settings; the defaults are the authors' (see the README for each)."""

    steps: int = 4000
    batch_size: int = 8  # frame pairs per step
    learning_rate: float = 1e-3
    nf: int = 64
    latent_scale: int = 16  # canvas pixels per cell of the background noise latent
    # The network trains and renders at this fraction of the working resolution; its layers
    # are upsampled to the working resolution and detail transfer restores the fine detail
    # there (the approach of the authors' predecessor, layered neural rendering). 1.0 on a
    # GPU; the CPU settings use less, where a full-resolution step costs too much.
    scale: float = 1.0
    lambda_mask: float = 50.0
    mask_threshold: float = 0.02  # the mask term drops 10x once below threshold * lambda_mask ...
    lambda_alpha_l1: float = 0.01
    alpha_l1_rolloff_epoch: int = 200  # ... and the L1 alpha term stops after this many epochs
    lambda_alpha_l0: float = 0.005
    lambda_flow: float = 1.0
    lambda_alpha_warp: float = 0.005
    trimap_band: int = 10  # px outside the mask where the mask term says nothing
    jitter_rate: float = 0.75
    jitter_max_scale: float = 1.25
    detail_transfer: bool = True
    checkpoint_every: int = 200
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # autocast on CUDA
    channels_last: bool = True
    compile: bool = False
    # Settings that replace the above when training runs on the CPU (see CPU_SETTINGS).
    cpu: dict = dataclasses.field(default_factory=lambda: dict(CPU_SETTINGS))

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown train settings: {', '.join(unknown)}")
        config = cls(**values)
        config.for_device(torch.device("cpu"))  # check the CPU overrides early
        return config

    def for_device(self, device: torch.device) -> "TrainConfig":
        """These settings with the CPU overrides applied when `device` is the CPU."""
        if device.type != "cpu" or not self.cpu:
            return self
        changes = dict(self.cpu)
        allowed = {f.name for f in dataclasses.fields(self)} - {"cpu"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown train.cpu settings: {', '.join(unknown)}")
        return dataclasses.replace(self, cpu={}, **changes)


@dataclass
class VideoTensors:
    """Everything training needs about one video, as tensors on one device.

    The network works at (h, w) = the training scale times the working resolution
    (H, W); the frames and canvas grid at (H, W) are kept for rendering the output.
    """

    frames: torch.Tensor  # (T, 3, h, w) in [-1, 1]
    masks: torch.Tensor  # (T, L, 1, h, w) binary
    trimaps: torch.Tensor  # (T, L, 1, h, w) in {-1, 0, 1}
    flow: torch.Tensor  # (T, 2, h, w) forward flow in training pixels; the last frame's from the backward flow
    confidence: torch.Tensor  # (T, 1, h, w); zero for the last frame
    background_grid: torch.Tensor  # (T, h, w, 2) frame pixel -> canvas, in [-1, 1]
    background_flow: torch.Tensor  # (T, 2, h, w) camera flow t -> t+1
    canvas_size: tuple[int, int]  # the background canvas at the training scale
    object_names: list[str]
    output_frames: torch.Tensor  # (T, 3, H, W) the working-resolution frames
    output_grid: torch.Tensor  # (T, H, W, 2) their canvas positions

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]


def homography_grid(homographies: np.ndarray, height: int, width: int, canvas_size: tuple[int, int]) -> np.ndarray:
    """For each frame, where each pixel centre lands on the canvas, normalised for grid_sample to [-1, 1]."""
    coords = canvas_coordinates(homographies, height, width)
    canvas_h, canvas_w = canvas_size
    coords[..., 0] = (coords[..., 0] + 0.5) / canvas_w * 2 - 1
    coords[..., 1] = (coords[..., 1] + 0.5) / canvas_h * 2 - 1
    return coords


def camera_flow(homographies: np.ndarray, height: int, width: int) -> np.ndarray:
    """The flow t -> t+1 that the camera alone causes: x -> H_{t+1}^-1 H_t x."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack((xs, ys, np.ones_like(xs)), -1).reshape(-1, 3)
    flows = np.zeros((len(homographies), 2, height, width), np.float32)
    for t in range(len(homographies) - 1):
        relative = np.linalg.inv(homographies[t + 1]) @ homographies[t]
        mapped = points @ relative.T
        mapped = mapped[:, :2] / mapped[:, 2:3]
        flows[t] = (mapped - points[:, :2]).T.reshape(2, height, width)
    return flows


def load_video(sample: str, frames_dir: Path, flow_dir: Path, homography_dir: Path, masks_dir: Path,
               object_names: list[str], trimap_band: int, device: torch.device, scale: float = 1.0) -> VideoTensors:
    """Read the upstream stages' outputs, check that they agree, and resample them to the training scale."""
    frames = read_frames(frames_dir)
    num_frames, height, width = frames.shape[:3]
    if not object_names:
        raise StageError(STAGE, sample, "the sample has no objects", "name at least one object under the sample's `objects`")
    masks = []
    for name in object_names:
        folder = Path(masks_dir) / name
        paths = list_frames(folder)
        if len(paths) != num_frames:
            raise StageError(STAGE, sample, f"object '{name}' has {len(paths)} masks in {folder} for {num_frames} frames",
                             "rerun the masks stage (snakemake --forcerun masks)")
        stack = read_frames(folder, mode="gray")
        if stack.shape[1:] != (height, width):
            raise StageError(STAGE, sample, f"masks of '{name}' are {stack.shape[2]}x{stack.shape[1]}, frames {width}x{height}",
                             "rerun the masks stage so masks match the working resolution")
        empty = [t for t in range(num_frames) if not (stack[t] > 127).any()]
        if len(empty) == num_frames:
            raise StageError(STAGE, sample, f"object '{name}' has an empty mask on every frame",
                             "check the object's prompt or mask folder")
        if empty:
            log.warning("%s: object '%s' has an empty mask on %d frame(s) (first: %d); its layer is driven by the "
                        "other losses there", sample, name, len(empty), empty[0])
        masks.append(stack > 127)
    mask_array = np.stack(masks, 1)[:, :, None].astype(np.float32)

    forward = np.load(Path(flow_dir) / "forward.npy")
    backward = np.load(Path(flow_dir) / "backward.npy")
    confidence = np.load(Path(flow_dir) / "confidence_forward.npy")
    for name, array in (("forward", forward), ("backward", backward)):
        if array.shape != (num_frames - 1, height, width, 2):
            raise StageError(STAGE, sample, f"{name} flow has shape {array.shape}, expected "
                             f"{(num_frames - 1, height, width, 2)}", "rerun the flow stage (snakemake --forcerun flow)")
    flow = np.zeros((num_frames, 2, height, width), np.float32)
    flow[:-1] = forward.transpose(0, 3, 1, 2)
    # The last frame has no successor; as the network's input it gets its motion from the
    # previous frame reversed, so that its layers look like every other frame's. Its
    # confidence stays zero: the flow loss never judges it.
    flow[-1] = -backward[-1].transpose(2, 0, 1)
    conf = np.zeros((num_frames, 1, height, width), np.float32)
    conf[:-1, 0] = confidence

    homographies = np.load(Path(homography_dir) / "homographies.npy")
    canvas = json.loads((Path(homography_dir) / "canvas.json").read_text())
    if homographies.shape != (num_frames, 3, 3):
        raise StageError(STAGE, sample, f"{len(homographies)} homographies for {num_frames} frames",
                         "rerun the homography stage (snakemake --forcerun homography)")
    canvas_size = (int(canvas["height"]), int(canvas["width"]))

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    output_frames = tensor(frames.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    output_grid = tensor(homography_grid(homographies, height, width, canvas_size))
    mask_tensor = (_shrink(tensor(mask_array).flatten(0, 1), size) > 0.5).to(torch.float32)
    mask_tensor = mask_tensor.view(num_frames, len(object_names), 1, *size)
    trimaps = losses.trimap(mask_tensor.flatten(0, 1), max(1, round(trimap_band * scale))).view_as(mask_tensor)
    # Flow in training pixels: (x, y) components scale with the width and height.
    pixel_scale = torch.tensor([size[1] / width, size[0] / height], device=device).view(1, 2, 1, 1)
    return VideoTensors(
        frames=_shrink(output_frames, size),
        masks=mask_tensor,
        trimaps=trimaps,
        flow=_shrink(tensor(flow), size) * pixel_scale,
        confidence=_shrink(tensor(conf), size),
        background_grid=_shrink(output_grid.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1).contiguous(),
        background_flow=_shrink(tensor(camera_flow(homographies, height, width)), size) * pixel_scale,
        canvas_size=(max(1, round(canvas_size[0] * scale)), max(1, round(canvas_size[1] * scale))),
        object_names=list(object_names),
        output_frames=output_frames,
        output_grid=output_grid,
    )


def _shrink(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average an (N, C, H, W) tensor down to `size`; the tensor itself when it already has that size."""
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor, size=size, mode="area")


def layer_inputs(model: Omnimatte, masks: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Per-layer network input (N, L, 16, H, W): layer id inside the mask, flow inside the mask, latent."""
    n, num_layers = masks.shape[:2]
    layer_ids = torch.arange(1, num_layers + 1, device=masks.device, dtype=masks.dtype).view(1, -1, 1, 1, 1)
    latent = model.frame_latent(grid).unsqueeze(1).expand(-1, num_layers, -1, -1, -1)
    return torch.cat((masks * layer_ids, flow.unsqueeze(1) * masks, latent), 2)


def jitter_grids(n: int, height: int, width: int, rate: float, max_scale: float,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random zoom-in crops, as the authors' augmentation: a sampling grid (N, H, W, 2) and each crop's scale.

    Everything is drawn and built on the generator's device, so a training step on the
    GPU never waits for the host.
    """
    device = generator.device
    zoom = 1 + (max_scale - 1) * torch.rand(n, generator=generator, device=device)
    scale = torch.where(torch.rand(n, generator=generator, device=device) < rate, zoom, torch.ones_like(zoom))
    # Output pixel p shows source position (p + offset) / scale; the offset keeps the crop inside the frame.
    offset_x = torch.rand(n, generator=generator, device=device) * (scale - 1) * width
    offset_y = torch.rand(n, generator=generator, device=device) * (scale - 1) * height
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    src_x = (xs[None] + 0.5 + offset_x[:, None, None]) / scale[:, None, None]
    src_y = (ys[None] + 0.5 + offset_y[:, None, None]) / scale[:, None, None]
    return torch.stack((src_x / width * 2 - 1, src_y / height * 2 - 1), -1), scale


def _resample(tensor: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(tensor, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Batch:
    """One training batch: frames t (first half) and t+1 (second half), all jittered alike per pair."""

    def __init__(self, video: VideoTensors, model: Omnimatte, indices: torch.Tensor, config: TrainConfig,
                 generator: torch.Generator) -> None:
        pairs = len(indices)
        frames = torch.cat((indices, indices + 1))
        num_layers = video.masks.shape[1]
        height, width = video.frames.shape[-2:]
        grid, scale = jitter_grids(pairs, height, width, config.jitter_rate, config.jitter_max_scale, generator)
        grid, scale = torch.cat((grid, grid)), torch.cat((scale, scale)).view(-1, 1, 1, 1)

        def sample(t: torch.Tensor) -> torch.Tensor:
            return _resample(t[frames], grid)

        self.image = sample(video.frames)
        self.masks = _resample(video.masks[frames].flatten(1, 2), grid).unsqueeze(2)
        self.trimaps = _resample(video.trimaps[frames].flatten(1, 2), grid).unsqueeze(2)
        self.flow = sample(video.flow) * scale
        self.confidence = sample(video.confidence)
        # The flow term only judges flow where some object is, as the authors do.
        self.confidence = self.confidence * (self.masks.sum(1) > 0).to(self.confidence.dtype)
        self.background_flow = sample(video.background_flow) * scale
        background_grid = _resample(video.background_grid[frames].permute(0, 3, 1, 2), grid).permute(0, 2, 3, 1)
        self.background_grid = background_grid.contiguous()
        self.inputs = layer_inputs(model, self.masks, self.flow, self.background_grid)
        self.pairs = pairs
        assert self.masks.shape[1] == num_layers


@dataclass
class LossWeights:
    """The loss weights that change during training, kept in checkpoints."""

    mask: float
    alpha_l1: float
    mask_rolloff_step: int = -1  # step at which the mask term was reduced; off at twice that

    def waiting_for_mask_threshold(self) -> bool:
        """Whether the schedule still needs the mask error (the only term it reads back from the device)."""
        return self.mask > 0 and self.mask_rolloff_step < 0

    def update(self, step: int, steps_per_epoch: int, mask_error: float | None, config: TrainConfig) -> list[str]:
        """The authors' schedule, checked once per epoch; `mask_error` is the unweighted mask term, needed
        only while waiting_for_mask_threshold(). Returns what changed, for the log."""
        changes: list[str] = []
        if step % steps_per_epoch:
            return changes
        if self.alpha_l1 > 0 and step >= config.alpha_l1_rolloff_epoch * steps_per_epoch:
            self.alpha_l1 = 0.0
            changes.append(f"alpha L1 term off (epoch {config.alpha_l1_rolloff_epoch} reached)")
        if self.waiting_for_mask_threshold():
            if step > steps_per_epoch and mask_error is not None and mask_error < config.mask_threshold:
                self.mask_rolloff_step = step
                self.mask *= 0.1
                changes.append(f"mask term cut to {self.mask:g} (its error {mask_error:.3g} fell below "
                               f"{config.mask_threshold:g}); off at step {2 * step}")
        elif self.mask > 0 and self.mask_rolloff_step >= 0 and step >= 2 * self.mask_rolloff_step:
            self.mask = 0.0
            changes.append("mask term off")
        return changes


def compute_losses(out: dict[str, torch.Tensor], batch: Batch, weights: LossWeights,
                   config: TrainConfig) -> dict[str, torch.Tensor]:
    alpha = out["layer_alpha"]
    composite_alpha = 1.0 - torch.prod(1.0 - alpha, dim=1)
    pairs = batch.pairs
    terms = {
        "reconstruction": losses.reconstruction_loss(out["rgb"], batch.image),
        "alpha_reg": losses.alpha_regularization(composite_alpha, weights.alpha_l1, config.lambda_alpha_l0),
        "mask": weights.mask * losses.mask_loss(alpha, batch.trimaps),
        "flow": config.lambda_flow * losses.flow_loss(out["flow"], batch.flow, batch.confidence),
        "alpha_warp": config.lambda_alpha_warp * losses.alpha_warp_loss(
            alpha[:pairs], alpha[pairs:], out["layer_flow"][:pairs]),
    }
    terms["total"] = sum(terms.values())
    return terms


def config_fingerprint(config: TrainConfig, video: VideoTensors, inputs: str = "") -> dict[str, str]:
    """What a checkpoint must match to be resumed: the settings that shape training and the data's size,
    and apart from them the inputs' digest (`fingerprint.inputs_digest`), so the log can say which changed."""
    settings = dataclasses.asdict(config)
    for key in ("checkpoint_every", "device", "compile"):
        settings.pop(key)
    settings["data"] = [list(video.frames.shape), list(video.masks.shape), list(video.canvas_size)]
    return {"settings": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16], "inputs": inputs}


def save_checkpoint(path: Path, model: Omnimatte, optimizer: torch.optim.Optimizer, step: int, weights: LossWeights,
                    generator: torch.Generator, history: list[dict], fingerprint: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        torch.save({
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "weights": dataclasses.asdict(weights),
            "generator": generator.get_state(),
            "history": history,
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


def write_loss_curves(history: list[dict], csv_path: Path, png_path: Path) -> None:
    """The loss terms per logged step, as CSV and as a log-scale plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "seconds", *LOSS_NAMES, *SCHEDULE_LABELS])
            writer.writeheader()
            writer.writerows(history)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    steps = [row["step"] for row in history]
    for name in LOSS_NAMES:
        values = [max(row[name], 1e-8) for row in history]
        ax.plot(steps, values, label=name, linewidth=2.0 if name == "total" else 1.2)
    for name, text in SCHEDULE_LABELS.items():
        for before, after in itertools.pairwise(history):
            if after[name] != before[name]:
                change = "off" if after[name] == 0 else f"x{after[name] / before[name]:.2g}"
                ax.axvline(after["step"], color="grey", linestyle=":", linewidth=1)
                ax.annotate(f"{text} {change}", (after["step"], 1), xycoords=("data", "axes fraction"),
                            rotation=90, va="top", ha="right", fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.set_title("Omnimatte training losses")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def train_model(sample: str, video: VideoTensors, config: TrainConfig, checkpoint_path: Path,
                device: torch.device, on_step: Callable[[int, Omnimatte], None] | None = None,
                stop: StopSignal | None = None, inputs: str = "") -> tuple[Omnimatte, list[dict]]:
    """Fit the model, resuming from `checkpoint_path` when it holds an unfinished run of the same settings
    and inputs (`inputs`: the digest of the files `video` was read from).

    `on_step(step, model)` is called after every step (the benchmark scores the layers with it).
    Once `stop` has received a signal, the current step is checkpointed and the process exits with 128 + signal.
    """
    torch.manual_seed(config.seed)
    # The latent keeps its cells per working-resolution canvas pixel at any training scale.
    model = Omnimatte(video.canvas_size, nf=config.nf, latent_scale=config.latent_scale * config.scale,
                      seed=config.seed).to(device)
    if config.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    weights = LossWeights(mask=config.lambda_mask, alpha_l1=config.lambda_alpha_l1)
    fingerprint = config_fingerprint(config, video, inputs)
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

    step_fn = model
    if config.compile:
        step_fn = torch.compile(model)
    pairs = video.num_frames - 1
    batch_size = min(config.batch_size, pairs)
    steps_per_epoch = max(1, math.ceil(pairs / batch_size))
    use_bf16 = config.bf16 and device.type == "cuda"
    began = time.perf_counter()
    elapsed_before = history[-1]["seconds"] if history else 0.0
    log_every = max(1, min(50, config.steps // 100))
    model.train()
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=f"{sample}: train", unit="step")
    for step in progress:
        indices = torch.randperm(pairs, generator=generator, device=device)[:batch_size]
        batch = Batch(video, model, indices, config, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = step_fn(batch.inputs, batch.background_grid, batch.background_flow)
        out = {k: v.float() for k, v in out.items()}
        terms = compute_losses(out, batch, weights, config)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        done = step + 1
        # Reading a loss back waits for the device, so it happens only to log and, in the
        # first epochs, for the mask term's switch.
        epoch_end = done % steps_per_epoch == 0
        read_mask = epoch_end and weights.waiting_for_mask_threshold()
        logged = done % log_every == 0 or done == config.steps
        if logged or read_mask:
            values = {name: float(terms[name].detach()) for name in LOSS_NAMES}
            if not math.isfinite(values["total"]):
                raise StageError(STAGE, sample, f"the loss became {values['total']} at step {done} "
                                 f"({', '.join(f'{k}={v:.3g}' for k, v in values.items())})",
                                 "lower train.learning_rate, or check the flow and masks for broken frames; "
                                 f"delete {checkpoint_path} to start over")
        if epoch_end:
            mask_error = values["mask"] / weights.mask if read_mask else None
            for change in weights.update(done, steps_per_epoch, mask_error, config):
                log.info("%s: step %d (epoch %d): %s", sample, done, done // steps_per_epoch, change)
        if logged:
            history.append({"step": done, "seconds": round(elapsed_before + time.perf_counter() - began, 3), **values,
                            "lambda_mask": weights.mask, "lambda_alpha_l1": weights.alpha_l1})
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


@dataclass
class RenderedFrame:
    """One frame's layers: colour in [-1, 1] (L,3,H,W), alpha in [0, 1] (L,1,H,W), background and composites."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    background: torch.Tensor
    model_composite: torch.Tensor  # what the network alone reproduces
    composite: torch.Tensor  # the composite of the layers as written (after detail transfer)


@torch.no_grad()
def render_frame(model: Omnimatte, video: VideoTensors, t: int, background_canvas: torch.Tensor,
                 detail_transfer: bool) -> RenderedFrame:
    """Render frame t without jitter.

    With detail transfer, each foreground layer's colour gets the residual between the
    frame and the model's composite, attenuated by the layers in front of it, so fine
    texture the network could not reproduce still ends up in some layer.
    """
    grid = video.background_grid[t:t + 1]
    inputs = layer_inputs(model, video.masks[t:t + 1], video.flow[t:t + 1], grid)
    rgba, _ = model.net(inputs.flatten(0, 1))
    output_size = tuple(video.output_frames.shape[-2:])
    if tuple(rgba.shape[-2:]) != output_size:  # trained below the working resolution
        rgba = F.interpolate(rgba.float(), size=output_size, mode="bilinear", align_corners=False)
    rgb = rgba[:, :3].float()
    alpha = rgba[:, 3:4].float() * 0.5 + 0.5
    background = F.grid_sample(background_canvas.float(), video.output_grid[t:t + 1], mode="bilinear",
                               padding_mode="border", align_corners=False)
    model_composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    composite = model_composite
    if detail_transfer:
        residual = video.output_frames[t:t + 1] - model_composite
        covered = torch.zeros_like(alpha[:1])
        adjusted = []
        for i in reversed(range(len(rgb))):
            adjusted.append(rgb[i:i + 1] + (1.0 - covered) * residual)
            covered = alpha[i:i + 1] + (1.0 - alpha[i:i + 1]) * covered
        rgb = torch.cat(adjusted[::-1]).clamp(-1, 1)
        composite = composite_over(background, list(rgb.split(1)), list(alpha.split(1)))
    return RenderedFrame(rgb, alpha, background, model_composite, composite)


@torch.no_grad()
def render_layers(model: Omnimatte, video: VideoTensors, detail_transfer: bool, out_dir: Path,
                  sample: str) -> dict[str, float]:
    """Render every frame and write the contract's layers, background and reconstruction."""
    model.eval()
    background_canvas = model.render_background()
    num_layers = len(video.object_names)
    alpha_sums = np.zeros(num_layers)
    psnr_model, psnr_output = [], []
    with atomic_dir(out_dir) as tmp:
        folders = {name: tmp / "layers" / name / "rgba" for name in video.object_names}
        for folder in [*folders.values(), tmp / "background", tmp / "reconstruction"]:
            folder.mkdir(parents=True)
        for t in tqdm(range(video.num_frames), desc=f"{sample}: render", unit="frame"):
            frame = render_frame(model, video, t, background_canvas, detail_transfer)
            target = video.output_frames[t:t + 1]
            psnr_model.append(_psnr(frame.model_composite, target))
            psnr_output.append(_psnr(frame.composite, target))
            for i, name in enumerate(video.object_names):
                rgba = torch.cat((frame.rgb[i] * 0.5 + 0.5, frame.alpha[i]))
                _imwrite(folders[name] / frame_name(t), tensor_to_uint8(rgba))
                alpha_sums[i] += float(frame.alpha[i].mean())
            _imwrite(tmp / "background" / frame_name(t), tensor_to_uint8(frame.background[0] * 0.5 + 0.5))
            _imwrite(tmp / "reconstruction" / frame_name(t), tensor_to_uint8(frame.composite[0] * 0.5 + 0.5))
    for i, name in enumerate(video.object_names):
        mean_alpha = alpha_sums[i] / video.num_frames
        if mean_alpha < 1e-3:
            log.warning("%s: layer '%s' collapsed to (almost) zero alpha (mean %.2g): the object was absorbed by the "
                        "background; check that it moves relative to the background and that its mask is right",
                        sample, name, mean_alpha)
    return {"psnr_model": float(np.mean(psnr_model)), "psnr_output": float(np.mean(psnr_output)),
            "mean_alpha": {name: float(alpha_sums[i] / video.num_frames) for i, name in enumerate(video.object_names)}}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) * 0.5).pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def tensor_to_uint8(chw: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image in [0, 1] as a contiguous uint8 (H, W, C) array, rounded."""
    image = (chw.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image)


def run_train(sample: str, frames_dir: Path, flow_dir: Path, homography_dir: Path, masks_dir: Path,
              object_names: list[str], out_dir: Path, train_dir: Path, config: TrainConfig) -> dict:
    """Train, render the layers into out_dir and write loss curves and a summary into train_dir.

    train_dir/checkpoint.pt holds the newest unfinished state; it is removed once the
    layers are written, and the final weights are kept as train_dir/model.pt.
    """
    device = resolve_device(STAGE, sample, config.device)
    if device.type == "cpu" and config.cpu:
        log.info("%s: training on the CPU, so train.cpu settings apply: %s", sample, config.cpu)
    config = config.for_device(device)
    train_dir = Path(train_dir)
    train_dir.mkdir(parents=True, exist_ok=True)
    log.info("%s: training on %s (%s)", sample, device, torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU")
    video = load_video(sample, frames_dir, flow_dir, homography_dir, masks_dir, object_names, config.trimap_band, device,
                       config.scale)
    log.info("%s: %d frames, trained at %dx%d (scale %g of %dx%d), %d layer(s) + background, canvas %dx%d", sample,
             video.num_frames, video.frames.shape[-1], video.frames.shape[-2], config.scale,
             video.output_frames.shape[-1], video.output_frames.shape[-2], len(object_names), video.canvas_size[1],
             video.canvas_size[0])
    checkpoint_path = train_dir / "checkpoint.pt"
    began = time.perf_counter()
    with catch_sigterm() as stop:
        model, history = train_model(sample, video, config, checkpoint_path, device, stop=stop,
                                     inputs=inputs_digest(frames_dir, flow_dir, homography_dir, masks_dir, object_names))
    train_seconds = time.perf_counter() - began
    quality = render_layers(model, video, config.detail_transfer, out_dir, sample)
    with atomic_path(train_dir / "model.pt") as tmp:
        torch.save({"model": model.state_dict(), "config": dataclasses.asdict(config),
                    "canvas_size": list(video.canvas_size), "object_names": object_names}, tmp)
    write_loss_curves(history, train_dir / "losses.csv", train_dir / "losses.png")
    summary = {"device": str(device), "steps": config.steps, "train_seconds_this_run": round(train_seconds, 2),
               **quality, "final_losses": history[-1] if history else {}}
    save_json(train_dir / "summary.json", summary)
    checkpoint_path.unlink(missing_ok=True)
    log.info("%s: reconstruction PSNR %.2f dB (model), %.2f dB (with detail transfer)", sample,
             quality["psnr_model"], quality["psnr_output"])
    return summary
