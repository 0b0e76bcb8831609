"""Training speed and time-to-quality of the train stage on the demo clip, scored against its ground truth.

Trains the demo (the `dog` preset, 48 frames at 448x256) with the code's default train
settings for the device (TrainConfig's: the full network on a GPU, CPU_SETTINGS on the
CPU). It does not read config/config.yaml: the shipped train section equals these
defaults (a test keeps them equal), but your edits there do not apply here; give
them with --set. Every
--eval-every steps it prints training seconds (scoring left out), steps per second,
peak GPU memory and how well the layer matches the truth; at the end, the time to
quality (the step and training seconds from which the dog's layer holds at least
--recall-target of its shadow and a soft IoU of at least --iou-target, to the end)
beside the step and seconds at which the stopping rule ended training and why,
and the evaluate stage's final scores. Files go to --out (default results/benchmark/train_speed/): curve.csv, metrics.json,
evaluation.png (a contact sheet of the layers against the truth) and summary.json.

    python benchmarks/train_speed.py                            # the GPU when there is one, else the CPU
    python benchmarks/train_speed.py --device cuda --set compile=true
    python benchmarks/train_speed.py --device cpu --steps 4000 --set nf=32
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from omnimatte.benchmark import RESULTS, SUITES, device_name, run_preset
from omnimatte.devices import resolve_device
from omnimatte.logs import setup_logging
from omnimatte.threads import fit_threads


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto")
    parser.add_argument("--preset", default="dog", help="the synthetic clip to train on")
    parser.add_argument("--frames", type=int, help="frames of the clip (default: the demo's 48)")
    parser.add_argument("--width", type=int, help="default: the demo's 448")
    parser.add_argument("--height", type=int, help="default: the demo's 256")
    parser.add_argument("--eval-every", type=int, help="score the layers every this many steps (default 250)")
    parser.add_argument("--steps", type=int, help="train exactly this many steps (default: until the stopping rule "
                        "ends training)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="a train setting over TrainConfig's defaults, e.g. --set nf=32 (repeatable)")
    parser.add_argument("--recall-target", type=float, default=0.9,
                        help="time to quality: effect recall held from here to the end (default 0.9)")
    parser.add_argument("--iou-target", type=float, default=0.8,
                        help="time to quality: soft IoU held from here to the end too (default 0.8)")
    parser.add_argument("--flow-weights", default="DEFAULT", help="RAFT weights (the DIS fallback when unavailable)")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_speed")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    setup_logging()
    fit_threads()
    settings = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    suite = SUITES["demo"].with_overrides(frames=args.frames, width=args.width, height=args.height,
                                          eval_every=args.eval_every, device=args.device, train=settings,
                                          steps=args.steps)
    device = resolve_device("benchmark", args.preset, suite.device)
    config = suite.train_config(device)
    result = run_preset(args.preset, suite, config, args.out / args.preset, device, args.flow_weights,
                        args.recall_target, args.iou_target)
    row = result["row"]
    summary = {
        "device": device_name(device),
        "clip": {"preset": args.preset, "frames": suite.frames, "width": suite.width, "height": suite.height},
        "train": {key: value for key, value in dataclasses.asdict(config).items() if key != "cpu"},
        "flow": row["flow"],
        "steps_per_second": row["steps_per_second"],
        "peak_gpu_mib": row["peak_gpu_mib"],
        "time_to_quality": {"recall_target": args.recall_target, "iou_target": args.iou_target,
                            "step": row["recall_step"],
                            "seconds": row["recall_seconds"]},
        "stopped": {"step": row["stop_step"], "seconds": row["train_seconds"], "reason": row["stop_reason"]},
        "train_seconds": row["train_seconds"],
        "final": {key: row[key] for key in ("soft_iou", "effect_recall", "alpha_leak", "background_psnr",
                                            "reconstruction_psnr", "mask_soft_iou", "mask_effect_recall",
                                            "median_background_psnr")},
        # The last scoring (the network's layers before detail transfer) and the same model scored with each
        # rendering step switched off in turn (plate matte, alpha fit, guided alpha upsampling, effect claim),
        # where it was on.
        "render_ablations": {
            "as_trained": {key: value for key, value in result["curve"][-1].items()
                           if key not in ("step", "seconds", "steps_per_second", "peak_gpu_mib")},
            **result["render_ablations"],
        },
    }
    (args.out / args.preset / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    quality = (f"step {row['recall_step']}, {row['recall_seconds']:.0f} s" if row["recall_step"] is not None
               else "not reached")
    print(f"time to quality (recall {args.recall_target:g} and soft IoU {args.iou_target:g} held to the end): "
          f"{quality}; stopped at step {row['stop_step']}, {row['train_seconds']:.0f} s of training "
          f"({row['stop_reason']})")


if __name__ == "__main__":
    main()
