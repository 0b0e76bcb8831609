"""Training speed and time-to-quality of the train stage on a synthetic clip with ground truth.

Prints, every --eval-every steps: training seconds (evaluation excluded), steps per
second, peak GPU memory, and how well the layer matches the truth: the share of the
effect (the shadow the coarse mask leaves out) in the object's alpha, the alpha
leaked outside the true layer, and the soft IoU. Then the time-to-quality: steps
and seconds until the effect recall first reaches --recall-target.

    python benchmarks/train_speed.py --device cuda                 # the full demo, paper settings
    python benchmarks/train_speed.py --device cpu --nf 32 --batch-size 2 --steps 800
    python benchmarks/train_speed.py --device cpu --frames 24 --width 224 --height 128 \
        --nf 32 --batch-size 4 --steps 2000 --sheet sheet.png     # a small clip, CPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from omnimatte.benchmark import prepare_synthetic, score_alphas
from omnimatte.composite import over_checkerboard
from omnimatte.devices import resolve_device
from omnimatte.io import write_png
from omnimatte.logs import setup_logging
from omnimatte.train import TrainConfig, render_alphas, render_frame, train_model


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
    parser.add_argument("--sheet", type=Path, help="write a contact sheet PNG of the final layers here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="any other train setting, e.g. --set alpha_l1_rolloff_epoch=20 (repeatable)")
    return parser.parse_args()


def write_sheet(path: Path, model, video, clip) -> None:
    """Rows of frames: input | layer over checkerboard | its alpha | true alpha | background | clean plate."""
    model.eval()
    canvas = model.render_background()
    rows = []
    name = clip.object_names[0]
    for t in np.linspace(0, clip.n_frames - 1, 3).astype(int):
        frame = render_frame(model, video, int(t), canvas, detail_transfer=True)
        rgba = torch.cat((frame.rgb[0] * 0.5 + 0.5, frame.alpha[0])).clamp(0, 1)
        rgba = (rgba.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        background = ((frame.background[0].permute(1, 2, 0).cpu().numpy() * 0.5 + 0.5).clip(0, 1) * 255 + 0.5)
        panels = [clip.frames[t], over_checkerboard(rgba), np.repeat(rgba[..., 3:], 3, 2),
                  np.repeat(clip.layers[name][t][..., 3:], 3, 2), background.astype(np.uint8), clip.background[t]]
        rows.append(np.concatenate(panels, 1))
    write_png(path, np.concatenate(rows, 0))


def main() -> None:
    args = parse_args()
    setup_logging()
    device = resolve_device("benchmark", args.preset, args.device)
    config = TrainConfig(steps=args.steps, nf=args.nf, batch_size=args.batch_size, latent_scale=args.latent_scale,
                         bf16=not args.no_bf16, compile=args.compile, device=str(device),
                         checkpoint_every=args.steps + 1,
                         **{key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)})
    work = Path(tempfile.mkdtemp(prefix="omnimatte-bench-"))
    clip, video, flow_info = prepare_synthetic(work, args.preset, args.frames, args.width, args.height,
                                               config.trimap_band, device, args.flow_weights, config.scale)

    rows: list[dict] = []
    clock = {"train": 0.0, "since": time.perf_counter()}

    def on_step(step: int, model) -> None:
        if step % args.eval_every and step != args.steps:
            return
        if device.type == "cuda":
            torch.cuda.synchronize()
        clock["train"] += time.perf_counter() - clock["since"]
        row = {"step": step, "seconds": round(clock["train"], 2), "steps_per_second": round(step / clock["train"], 3)}
        if device.type == "cuda":
            row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
        row.update(score_alphas(render_alphas(model, video), clip))
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        clock["since"] = time.perf_counter()

    model, _ = train_model(args.preset, video, config, work / "checkpoint.pt", device, on_step=on_step)
    if args.sheet:
        write_sheet(args.sheet, model, video, clip)
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
