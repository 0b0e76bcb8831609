"""Training steps a second of several settings, side by side on one synthetic clip.

A shared machine's speed drifts from minute to minute, so timings taken one after the
other compare badly. This script builds one model per variant and takes their steps in
turn (a step of each, then again), so every variant sees the same load; it prints the
median steps a second of each after the warm-up steps. The clip is a preset of the
benchmark (flow, homographies and masks made as the benchmark makes them); the settings
are the fast suite's (train.cpu's at full size) on the CPU, TrainConfig's defaults on a
GPU, with each variant's changes over them. Only speed is measured: the losses are not
scored (the benchmark does that).

    python benchmarks/step_speed.py --threads 2 --variant '{"background": "network"}'
    python benchmarks/step_speed.py --preset trio --variant '{"camera_adjustment": false}' --variant '{"bf16": true}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from omnimatte.benchmark import SUITES, device_name, prepare_synthetic
from omnimatte.devices import resolve_device
from omnimatte.logs import setup_logging
from omnimatte.train.loop import optimisation_step, start_training


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--preset", default="dog", help="the synthetic clip (a benchmark preset)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps of each variant first")
    parser.add_argument("--variant", action="append", default=[], metavar="JSON",
                        help="train settings over the suite's, as in --settings (repeatable); the suite's own always runs")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device("step_speed", args.preset, args.device)
    suite = SUITES["fast" if device.type == "cpu" else "full"]
    variants = {"defaults": {}}
    for text in args.variant:
        changes = json.loads(text)
        if not isinstance(changes, dict):
            raise SystemExit(f"--variant {text!r}: give a JSON object of train settings")
        variants[json.dumps(changes, sort_keys=True)] = changes
    configs = {name: suite.with_overrides(train=changes).train_config(device) for name, changes in variants.items()}
    needs_plate = any(config.background == "canvas" for config in configs.values())
    scales = {config.scale for config in configs.values()}
    if len(scales) != 1:
        raise SystemExit("every variant must train at the same train.scale (the clip is loaded once)")
    first = next(iter(configs.values()))
    with tempfile.TemporaryDirectory() as work:
        _, video, _ = prepare_synthetic(Path(work), args.preset, args.frames, args.width, args.height,
                                        first.trimap_band, device, "none", first.scale, canvas_plate=needs_plate)
    runs = {}
    for name, config in configs.items():
        state = start_training(video, config, device)
        state.model.train()
        step_fn = torch.compile(state.model) if config.compile else state.model
        runs[name] = (state, step_fn, config, [])
    for step in range(args.warmup + args.steps):
        for state, step_fn, config, seconds in runs.values():
            began = time.perf_counter()
            optimisation_step(state.model, step_fn, state.optimizer, video, config, state.weights, state.generator)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= args.warmup:
                seconds.append(time.perf_counter() - began)
    print(f"{device_name(device)}; {args.preset}, {args.frames} frames {args.width}x{args.height}; "
          f"median of {args.steps} steps after {args.warmup}, the variants' steps taken in turn")
    for name, (*_, seconds) in runs.items():
        print(f"{1.0 / statistics.median(seconds):6.2f} steps/s  {name}")


if __name__ == "__main__":
    main()
