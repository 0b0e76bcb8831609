"""Training speed and time-to-quality of the train stage on a synthetic clip with ground truth.

Prints, every --eval-every steps: training seconds (evaluation excluded), steps per
second, peak GPU memory, and how well the layer matches the truth: the share of the
effect (the shadow the coarse mask leaves out) in the object's alpha, the alpha
leaked outside the true layer, and the soft IoU. Then the time-to-quality: steps
and seconds until the effect recall first reaches --recall-target.

    python benchmarks/train_speed.py --device cuda                 # the full demo, paper settings
    python benchmarks/train_speed.py --device cpu --nf 32 --batch-size 2 --steps 800
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from omnimatte.devices import resolve_device
from omnimatte.evaluate import alpha_leak, effect_recall, soft_iou
from omnimatte.flow import run_flow
from omnimatte.homography import run_homography
from omnimatte.io import write_frames
from omnimatte.logs import setup_logging
from omnimatte.synthetic import render_clip
from omnimatte.train import TrainConfig, load_video, render_alphas, train_model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--preset", default="dog")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--nf", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--latent-scale", type=int, default=16)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--flow-weights", default="DEFAULT", help="RAFT weights (DIS when unavailable)")
    parser.add_argument("--recall-target", type=float, default=0.5)
    parser.add_argument("--json", type=Path, help="also write the rows and summary here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    setup_logging()
    device = resolve_device("benchmark", args.preset, args.device)
    clip = render_clip(args.preset, args.frames, args.width, args.height)
    work = Path(tempfile.mkdtemp(prefix="omnimatte-bench-"))
    write_frames(work / "frames", clip.frames)
    for name in clip.object_names:
        write_frames(work / "masks" / name, clip.masks[name])
    flow_info = run_flow(args.preset, work / "frames", work / "flow", work / "flow.mp4", weights=args.flow_weights,
                         device=str(device))
    run_homography(args.preset, work / "frames", work / "masks", work / "homography", work / "stabilised.mp4")
    config = TrainConfig(steps=args.steps, nf=args.nf, batch_size=args.batch_size, latent_scale=args.latent_scale,
                         bf16=not args.no_bf16, compile=args.compile, device=str(device),
                         checkpoint_every=args.steps + 1)
    video = load_video(args.preset, work / "frames", work / "flow", work / "homography", work / "masks",
                       clip.object_names, config.trimap_band, device)
    truth = {name: clip.layers[name][..., 3].astype(np.float64) / 255 for name in clip.object_names}
    effects = {name: clip.effects[name].astype(np.float64) / 255 for name in clip.object_names}

    rows: list[dict] = []
    clock = {"train": 0.0, "since": time.perf_counter()}

    def on_step(step: int, model) -> None:
        if step % args.eval_every and step != args.steps:
            return
        if device.type == "cuda":
            torch.cuda.synchronize()
        clock["train"] += time.perf_counter() - clock["since"]
        alphas = render_alphas(model, video)
        row = {"step": step, "seconds": round(clock["train"], 2), "steps_per_second": round(step / clock["train"], 3)}
        if device.type == "cuda":
            row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
        for i, name in enumerate(clip.object_names):
            alpha = alphas[:, i].astype(np.float64)
            row[f"{name}_effect_recall"] = round(effect_recall(alpha, effects[name]), 4)
            row[f"{name}_alpha_leak"] = round(alpha_leak(alpha, truth[name]), 4)
            row[f"{name}_soft_iou"] = round(soft_iou(alpha, truth[name]), 4)
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        clock["since"] = time.perf_counter()

    train_model(args.preset, video, config, work / "checkpoint.pt", device, on_step=on_step)
    first = clip.object_names[0]
    reached = next((r for r in rows if r[f"{first}_effect_recall"] >= args.recall_target), None)
    summary = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "flow": flow_info["method"],
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "steps_per_second": rows[-1]["steps_per_second"],
        "peak_gpu_mib": rows[-1].get("peak_gpu_mib"),
        "time_to_quality": {"recall_target": args.recall_target,
                            "step": reached["step"] if reached else None,
                            "seconds": reached["seconds"] if reached else None},
        "final": rows[-1],
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
