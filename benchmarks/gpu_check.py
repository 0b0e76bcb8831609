"""The GPU path in one run: training in bf16 and float32, resume after a kill, peak memory, steps a second at
the paper's settings and the `full` suite's first preset, printed as one table.

What the CPU tests cannot run is the CUDA path: bf16 autocast (the default on a GPU),
a checkpoint resumed with the GPU generator's random state, the paper's network at the
demo's size and the `full` suite. A machine with a GPU runs all of it in under five
minutes; `--device cpu` runs the same code with tiny sizes as a smoke run (CI does, in
tests/test_gpu_check.py). Every device decision is the `--device` given, resolved once;
the code under test places every tensor by the model's device.

    python benchmarks/gpu_check.py                    # CUDA
    python benchmarks/gpu_check.py --device cpu       # the smoke run
    python benchmarks/gpu_check.py --full-steps 4000  # the full suite's preset at its own length

The checks, one row each (the process exits with 1 when one fails):
  bf16 / float32   `--steps` training steps of the paper's settings on the demo clip; every
                   loss finite, and the first step's loss of the two within 5 % (same
                   weights, same batch: only the rounding differs)
  resume           a run killed after a step between checkpoints and run again ends with the
                   weights of an uninterrupted run: no further from them than twice what two
                   uninterrupted runs differ by (a GPU's atomic adds), plus 1e-6
  paper settings   steps a second (median of `--timed-steps` after warm-up) and peak memory
                   (the GPU's allocated bytes; the process's peak RSS on the CPU)
  full suite       its first preset, trained for `--full-steps`, rendered and evaluated:
                   scores, training seconds and steps a second
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from omnimatte.benchmark import SUITES, device_name, prepare_synthetic, run_preset
from omnimatte.devices import resolve_device
from omnimatte.logs import setup_logging
from omnimatte.synthetic import PRESETS
from omnimatte.train import TrainConfig, VideoTensors, train_model
from omnimatte.train.loop import optimisation_step, start_training

# The sizes of each device's run: the demo clip and the paper's settings on a GPU; tiny ones on the CPU.
SIZES = {
    "cuda": {"frames": 48, "width": 448, "height": 256, "train": {}, "steps": 50, "resume_steps": 60,
             "checkpoint_every": 20, "kill_after": 30, "warmup_steps": 10, "timed_steps": 50, "full_steps": 1000,
             "full_eval_every": 250},
    # bf16 only in its own row on the CPU: autocast to bf16 is slow on CPUs without bf16 units.
    "cpu": {"frames": 8, "width": 192, "height": 112, "train": {"nf": 8, "batch_size": 2, "bf16": False},
            "steps": 3, "resume_steps": 6, "checkpoint_every": 2, "kill_after": 3, "warmup_steps": 1,
            "timed_steps": 3, "full_steps": 2, "full_eval_every": 2},
}


class Killed(Exception):
    """Stands for the process being killed between two checkpoints."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke run with tiny sizes)")
    parser.add_argument("--steps", type=int, help="training steps of the bf16 and float32 runs")
    parser.add_argument("--full-steps", type=int, help="training steps of the full suite's preset (its own: 4000)")
    parser.add_argument("--timed-steps", type=int, help="steps timed at the paper's settings")
    parser.add_argument("--flow-weights", default="none",
                        help="RAFT weights for the clips (default none: OpenCV's DIS flow, no download)")
    parser.add_argument("--json", type=Path, help="also write the table's rows here")
    return parser.parse_args()


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """The GPU's peak allocated memory since the last reset, or on the CPU the process's peak resident size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "GPU allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, "process peak RSS"  # KiB on Linux


def paper_settings(device: torch.device, sizes: dict, **changes) -> TrainConfig:
    """The paper's settings (TrainConfig's defaults; on the CPU without train.cpu's, with the tiny run's changes).
    A run given `steps` trains exactly that many: the stopping rule's floor and ceiling are set to it."""
    config = TrainConfig(**{**sizes["train"], "device": str(device), "cpu": {}}).for_device(device)
    if "steps" in changes:
        changes.update(min_steps=changes["steps"], max_steps=changes["steps"])
    return dataclasses.replace(config, **changes)


def train(video: VideoTensors, config: TrainConfig, checkpoint: Path, device: torch.device,
          kill_after: int | None = None) -> tuple[dict[str, torch.Tensor], list[dict], float]:
    """Train (from `checkpoint` when it holds this run's state); returns the weights, the loss history and the
    seconds. With `kill_after`, the run dies after that step, as a killed process would."""

    def die(step: int, model) -> None:
        if step == kill_after:
            raise Killed()

    began = time.perf_counter()
    run = train_model("gpu_check", video, config, checkpoint, device, on_step=die)
    synchronize(device)
    seconds = time.perf_counter() - began
    return {key: value.detach().clone() for key, value in run.model.state_dict().items()}, run.history, seconds


def largest_difference(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    return max(float((first[key].float() - second[key].float()).abs().max()) for key in first)


def check_precision(video: VideoTensors, device: torch.device, sizes: dict, steps: int, work: Path) -> list[dict]:
    rows, first_losses = [], {}
    for bf16 in (True, False):
        config = paper_settings(device, sizes, bf16=bf16, steps=steps, checkpoint_every=steps + 1)
        _, history, seconds = train(video, config, work / f"precision_{bf16}.pt", device)
        totals = [point["total"] for point in history]
        first_losses[bf16] = totals[0]
        rows.append({"check": "bf16" if bf16 else "float32", "ok": all(math.isfinite(t) for t in totals),
                     "result": f"{steps} steps, loss {totals[0]:.4f} -> {totals[-1]:.4f}",
                     "figures": f"{steps / seconds:.2f} steps/s with the first steps"})
    agreement = abs(first_losses[True] - first_losses[False]) / abs(first_losses[False])
    rows[0]["ok"] = rows[0]["ok"] and agreement < 0.05
    rows[0]["result"] += f"; first loss {100 * agreement:.2f} % from float32's"
    return rows


def check_resume(video: VideoTensors, device: torch.device, sizes: dict, work: Path) -> dict:
    config = paper_settings(device, sizes, steps=sizes["resume_steps"], checkpoint_every=sizes["checkpoint_every"])
    straight, _, _ = train(video, config, work / "straight.pt", device)
    again, _, _ = train(video, config, work / "again.pt", device)
    checkpoint = work / "killed.pt"
    try:
        train(video, config, checkpoint, device, kill_after=sizes["kill_after"])
    except Killed:
        pass
    saved_step = torch.load(checkpoint, map_location="cpu", weights_only=False)["step"]
    resumed, _, _ = train(video, config, checkpoint, device)
    difference, noise = largest_difference(resumed, straight), largest_difference(again, straight)
    return {"check": "resume", "ok": saved_step < sizes["kill_after"] and difference <= 2 * noise + 1e-6,
            "result": f"killed after step {sizes['kill_after']}, resumed from step {saved_step} to "
                      f"{sizes['resume_steps']}",
            "figures": f"max |resumed - straight| {difference:.2e}; two straight runs {noise:.2e}"}


def check_speed(video: VideoTensors, device: torch.device, sizes: dict, timed_steps: int) -> dict:
    config = paper_settings(device, sizes)
    state = start_training(video, config, device)
    state.model.train()
    reset_peak_memory(device)
    seconds = []
    for step in range(sizes["warmup_steps"] + timed_steps):
        began = time.perf_counter()
        optimisation_step(state.model, state.model, state.optimizer, video, config, state.weights, state.generator)
        synchronize(device)
        if step >= sizes["warmup_steps"]:
            seconds.append(time.perf_counter() - began)
    peak, kind = peak_memory_mib(device)
    return {"check": "paper settings", "ok": True,
            "result": f"nf {config.nf}, batch {config.batch_size}, bf16 {config.bf16}, channels_last "
                      f"{config.channels_last}",
            "figures": f"{1 / statistics.median(seconds):.2f} steps/s (median of {timed_steps}); peak {peak:.0f} MiB "
                       f"{kind}"}


def check_full_suite(device: torch.device, sizes: dict, steps: int, flow_weights: str, work: Path) -> dict:
    preset = next(iter(PRESETS))
    suite = SUITES["full"].with_overrides(device=str(device), steps=steps, eval_every=sizes["full_eval_every"],
                                          train=sizes["train"])
    if device.type == "cpu":
        suite = suite.with_overrides(frames=sizes["frames"], width=sizes["width"], height=sizes["height"])
    reset_peak_memory(device)
    row = run_preset(preset, suite, suite.train_config(device), work / "full" / preset, device, flow_weights)["row"]
    scores = [row[key] for key in ("soft_iou", "effect_recall", "background_psnr", "reconstruction_psnr")]
    peak, kind = peak_memory_mib(device)
    return {"check": f"full suite: {preset}",
            "ok": all(value is not None and math.isfinite(value) for value in scores),
            "result": f"{suite.frames} frames {suite.width}x{suite.height}, {steps} steps: soft IoU "
                      f"{_figure(row['soft_iou'], 3)}, effect recall {_figure(row['effect_recall'], 3)}, bg PSNR "
                      f"{_figure(row['background_psnr'], 2)}, recon PSNR {_figure(row['reconstruction_psnr'], 2)}",
            "figures": f"train {row['train_seconds']} s, {row['steps_per_second']} steps/s; peak {peak:.0f} MiB {kind}"}


def _figure(value: float | None, decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def table(rows: list[dict]) -> str:
    lines = ["| check | ok | result | figures |", "|---|---|---|---|"]
    lines += [f"| {row['check']} | {'yes' if row['ok'] else 'NO'} | {row['result']} | {row['figures']} |"
              for row in rows]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    setup_logging()
    device = resolve_device("gpu_check", "demo", args.device)
    sizes = SIZES["cuda" if device.type == "cuda" else "cpu"]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        config = paper_settings(device, sizes)
        _, video, _ = prepare_synthetic(work / "demo", "dog", sizes["frames"], sizes["width"], sizes["height"],
                                        config.trimap_band, device, args.flow_weights, config.scale,
                                        canvas_plate=config.background == "canvas")
        rows = check_precision(video, device, sizes, args.steps or sizes["steps"], work)
        rows.append(check_resume(video, device, sizes, work))
        rows.append(check_speed(video, device, sizes, args.timed_steps or sizes["timed_steps"]))
        del video
        rows.append(check_full_suite(device, sizes, args.full_steps or sizes["full_steps"], args.flow_weights, work))
    title = (f"gpu_check on {device_name(device)}, torch {torch.__version__}; demo clip {sizes['frames']} frames "
             f"{sizes['width']}x{sizes['height']}; {time.perf_counter() - began:.0f} s in all")
    print(f"{title}\n\n{table(rows)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"title": title, "rows": rows}, indent=2))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
