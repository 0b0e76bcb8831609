"""The `omnimatte` command: one subcommand per pipeline stage.

Snakemake's rules call these, and a person can run any stage by hand. Paths are
flags; a stage's tuning settings come as one JSON object (`--options`), the same
mapping as the stage's section of config/config.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from omnimatte.errors import StageError
from omnimatte.logs import setup_logging


def _frames_info(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _demo(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.synthetic import make_demo

    make_demo(Path(args.out), **options)


def _frames(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.frames import run_frames

    run_frames(args.sample, Path(args.video), Path(args.out), Path(args.info), **options)


def _flow(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.flow import run_flow

    fps = _frames_info(args.frames_info)["fps"]
    run_flow(args.sample, Path(args.frames), Path(args.out), Path(args.preview), fps=fps, **options)


def _masks(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.masks import run_masks

    info = _frames_info(args.frames_info)
    flow_dir = Path(args.flow) if args.flow else None
    run_masks(args.sample, Path(args.frames), json.loads(args.objects), Path(args.out), Path(args.preview),
              frames_info=info,
              forward_flow=flow_dir / "forward.npy" if flow_dir else None,
              backward_flow=flow_dir / "backward.npy" if flow_dir else None,
              fps=info["fps"], **options)


def _homography(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.homography import run_homography

    fps = _frames_info(args.frames_info)["fps"]
    run_homography(args.sample, Path(args.frames), Path(args.masks) if args.masks else None, Path(args.out),
                   Path(args.preview), fps=fps, **options)


def _train(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.train import TrainConfig, run_train

    try:
        config = TrainConfig.from_dict(options)
    except ValueError as err:
        raise StageError("train", args.sample, str(err), "fix the train section of the config") from err
    run_train(args.sample, Path(args.frames), Path(args.flow), Path(args.homography), Path(args.masks),
              args.objects.split(","), Path(args.out), Path(args.train_dir), config)


def _composite(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.composite import flow_notes, run_composite

    fps = _frames_info(args.frames_info)["fps"]
    notes = flow_notes(Path(args.flow_info)) if args.flow_info else []
    run_composite(args.sample, Path(args.frames), Path(args.omnimatte), args.objects.split(","), Path(args.out),
                  fps=fps, notes=notes, **options)


def _evaluate(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.evaluate import run_evaluate

    run_evaluate(args.sample, Path(args.omnimatte), Path(args.frames), Path(args.ground_truth),
                 args.objects.split(","), Path(args.out), masks_dir=Path(args.masks) if args.masks else None,
                 homography_dir=Path(args.homography) if args.homography else None,
                 sheet_path=Path(args.sheet) if args.sheet else None)


def _benchmark(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.benchmark import SUITES, run_suite

    suite = SUITES[args.suite].with_overrides(frames=args.frames, width=args.width, height=args.height,
                                              steps=args.steps, eval_every=args.eval_every, device=args.device,
                                              train=options)
    presets = args.presets.split(",") if args.presets else None
    run_suite(suite, Path(args.out or f"benchmarks/{args.suite}"), presets, flow_weights=args.flow_weights)


def _download_sam(args: argparse.Namespace, options: dict) -> None:
    from omnimatte.masks import download_sam_weights

    download_sam_weights(args.url, Path(args.dest))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnimatte", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def stage(name: str, handler: Callable, help_text: str, sample: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if sample:
            p.add_argument("--sample", required=True, help="sample name, used in messages")
        p.add_argument("--options", default="{}", help="JSON object of the stage's settings (see config/config.yaml)")
        p.add_argument("--log", help="append the log to this file as well as stderr")
        p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
        p.set_defaults(handler=handler)
        return p

    p = stage("demo", _demo, "generate a synthetic clip with ground-truth layers", sample=False)
    p.add_argument("--out", required=True, help="output folder (video.mp4, masks/, gt/)")

    p = stage("frames", _frames, "decode a video into frames at the working resolution")
    p.add_argument("--video", required=True)
    p.add_argument("--out", required=True, help="frame folder to write")
    p.add_argument("--info", required=True, help="JSON file to write with sizes, count and fps")

    p = stage("flow", _flow, "forward/backward optical flow (RAFT, or DIS without weights) and confidence")
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preview", required=True)

    p = stage("masks", _masks, "coarse object masks from SAM prompts or user mask folders")
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--objects", required=True, help="JSON object: name -> {masks: dir} or {box/points, frame}")
    p.add_argument("--flow", help="flow folder, needed to carry SAM prompts through the video")
    p.add_argument("--out", required=True)
    p.add_argument("--preview", required=True)

    p = stage("homography", _homography, "camera motion: per-frame homographies into one background canvas")
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--masks", help="mask folder (one sub-folder per object) to exclude from matching")
    p.add_argument("--out", required=True)
    p.add_argument("--preview", required=True)

    p = stage("train", _train, "train the Omnimatte model and render the layers")
    p.add_argument("--frames", required=True)
    p.add_argument("--flow", required=True)
    p.add_argument("--homography", required=True)
    p.add_argument("--masks", required=True)
    p.add_argument("--objects", required=True, help="comma-separated object names, back to front")
    p.add_argument("--out", required=True, help="omnimatte folder to write (layers/, background/, reconstruction/)")
    p.add_argument("--train-dir", required=True, help="folder for checkpoints, loss curves and the model")

    p = stage("composite", _composite, "the overview video omnimatte.mp4")
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--omnimatte", required=True)
    p.add_argument("--objects", required=True)
    p.add_argument("--flow-info", help="the flow stage's info.json, to note a fallback in the video")
    p.add_argument("--out", required=True)

    p = stage("evaluate", _evaluate, "score the layers against ground truth (synthetic clips) into metrics.json")
    p.add_argument("--omnimatte", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--ground-truth", required=True, help="folder with background/, layers/, effects/")
    p.add_argument("--objects", required=True)
    p.add_argument("--masks", help="the coarse masks, to score the mask-only baseline too")
    p.add_argument("--homography", help="the homography folder, to score the median-background baseline too")
    p.add_argument("--sheet", help="PNG to draw: a few frames of layer vs true alpha, with error maps")
    p.add_argument("--out", required=True)

    p = stage("benchmark", _benchmark, "train and score every synthetic preset; print and write a results table",
              sample=False)
    p.add_argument("--suite", choices=["fast", "full"], default="fast",
                   help="fast: CPU, small clips, few steps; full: GPU, the paper's settings")
    p.add_argument("--presets", help="comma-separated presets to run (default: all)")
    p.add_argument("--out", help="output folder (default: benchmarks/SUITE)")
    p.add_argument("--frames", type=int, help="override the suite's frames per clip")
    p.add_argument("--width", type=int, help="override the suite's frame width")
    p.add_argument("--height", type=int, help="override the suite's frame height")
    p.add_argument("--steps", type=int, help="override the suite's training steps")
    p.add_argument("--eval-every", type=int, help="score the layers every this many steps")
    p.add_argument("--device", help="override the suite's device (cpu, cuda, auto)")
    p.add_argument("--flow-weights", default="DEFAULT", help="RAFT weights (the DIS fallback when unavailable)")

    p = stage("download-sam", _download_sam, "download SAM weights (needs internet)", sample=False)
    p.add_argument("--url", required=True)
    p.add_argument("--dest", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = setup_logging(args.log)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:
        options = json.loads(args.options)
        if not isinstance(options, dict):
            raise ValueError("--options must be a JSON object")
        args.handler(args, options)
    except StageError as err:
        log.error("%s", err)
        return 1
    except Exception:
        log.exception("omnimatte %s failed unexpectedly%s", args.command,
                      f" for sample '{args.sample}'" if getattr(args, "sample", None) else "")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
