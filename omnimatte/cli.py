"""The `omnimatte` command: one subcommand per pipeline stage.

Snakemake's rules call these, and a person can run any stage by hand. Paths are
flags; a stage's settings come as one JSON object (`--settings`), the same
mapping as the stage's section of config/config.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from omnimatte import __version__
from omnimatte.contract import FlowFiles, HomographyFiles, load_frames_info
from omnimatte.errors import StageError
from omnimatte.logs import setup_logging
from omnimatte.threads import fit_threads

if TYPE_CHECKING:  # imported where used: torch loads with it
    from omnimatte.train import TrainConfig

DEFAULT_CONFIG = "config/config.yaml"


def _frames_info(args: argparse.Namespace, stage: str) -> dict:
    return load_frames_info(stage, args.sample, Path(args.frames_info))


def _timing(args: argparse.Namespace, stage: str, with_sound: bool = False) -> dict:
    """The exact frame rate of the sample's frames, and for videos that span the clip the source's sound."""
    from omnimatte.frames import frame_rate, source_audio

    info = _frames_info(args, stage)
    timing = {"fps": frame_rate(info)}
    if with_sound:
        timing["audio"] = source_audio(stage, args.sample, info)
    return timing


def _demo(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.synthetic import make_demo

    make_demo(Path(args.out), **settings)


def _frames(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.frames import run_frames

    run_frames(args.sample, Path(args.video), Path(args.out), Path(args.info), **settings)


def _flow(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.flow import run_flow

    fps = _frames_info(args, "flow")["fps"]
    run_flow(args.sample, Path(args.frames), Path(args.out), Path(args.preview), fps=fps, **settings)


def _masks(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.masks import run_masks

    info = _frames_info(args, "masks")
    flow = FlowFiles(Path(args.flow)) if args.flow else None
    run_masks(args.sample, Path(args.frames), json.loads(args.objects), Path(args.out), Path(args.preview),
              frames_info=info,
              forward_flow=flow.forward if flow else None,
              backward_flow=flow.backward if flow else None,
              fps=info["fps"], **settings)


def _homography(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.homography import run_homography

    info = _frames_info(args, "homography")
    run_homography(args.sample, Path(args.frames), Path(args.masks) if args.masks else None, Path(args.out),
                   Path(args.preview), fps=info["fps"], upscale=info["width"] / (info.get("source_width") or info["width"]),
                   **settings)


def _train_config(args: argparse.Namespace, settings: dict, stage: str) -> TrainConfig:
    """The config's train section as settings, refused with the stage's name where it is wrong."""
    from omnimatte.train import TrainConfig

    try:
        return TrainConfig.from_dict(settings)
    except ValueError as err:
        raise StageError(stage, args.sample, str(err), "fix the train section of the config") from err


def _train(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.background_fit import BackgroundFitSettings
    from omnimatte.train import run_train

    reach = BackgroundFitSettings.effect_reach if args.effect_reach is None else args.effect_reach
    if not reach >= 0:
        raise StageError("train", args.sample, f"--effect-reach is {args.effect_reach}",
                         "set diagnose.background.effect_reach to 0 or more object sizes")
    run_train(args.sample, Path(args.frames), Path(args.flow), Path(args.homography), Path(args.masks),
              args.objects.split(","), Path(args.train_dir), _train_config(args, settings, "train"), reach)


def _render(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.diagnose import DiagnoseSettings
    from omnimatte.render.stage import STAGE, run_render

    config = _train_config(args, settings, STAGE)
    try:
        background = json.loads(args.background_fit)
        fit = DiagnoseSettings.from_dict({"background": background}).background.fit_settings()
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise StageError(STAGE, args.sample, f"--background-fit: {err}",
                         "fix the diagnose.background section of the config") from err
    run_render(args.sample, Path(args.frames), Path(args.flow), Path(args.homography), Path(args.masks),
               args.objects.split(","), Path(args.model), Path(args.out), config, fit,
               Path(args.background_fit_file) if args.background_fit_file else None)


def _background_fit(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.background_fit_stage import STAGE, run_background_fit
    from omnimatte.diagnose import DiagnoseSettings

    try:
        fit = DiagnoseSettings.from_dict({"background": settings}).background.fit_settings()
    except (TypeError, ValueError) as err:
        raise StageError(STAGE, args.sample, str(err), "fix the diagnose.background section of the config") from err
    run_background_fit(args.sample, Path(args.frames), Path(args.masks), args.objects.split(","), Path(args.homography),
                       Path(args.flow), fit, Path(args.out))


def _composite(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.composite import flow_notes, run_composite

    notes = flow_notes(Path(args.flow_info)) if args.flow_info else []
    run_composite(args.sample, Path(args.frames), Path(args.omnimatte), args.objects.split(","), Path(args.out),
                  notes=notes, flags_path=Path(args.flags) if args.flags else None, **_timing(args, "composite"))


def _evaluate(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.evaluate import run_evaluate

    run_evaluate(args.sample, Path(args.omnimatte), Path(args.frames), Path(args.ground_truth),
                 args.objects.split(","), Path(args.out), masks_dir=Path(args.masks) if args.masks else None,
                 homography_dir=Path(args.homography) if args.homography else None,
                 sheet_path=Path(args.sheet) if args.sheet else None)


def _diagnose(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.diagnose import DiagnoseSettings, run_diagnose

    try:
        diagnose_settings = DiagnoseSettings.from_dict(settings)
    except (TypeError, ValueError) as err:
        raise StageError("diagnose", args.sample, str(err), "fix the diagnose section of the config") from err
    run_diagnose(args.sample, Path(args.frames), Path(args.masks), args.objects.split(","), Path(args.homography),
                 Path(args.flow) if args.flow else None, Path(args.omnimatte) if args.omnimatte else None,
                 Path(args.out), Path(args.sheet), Path(args.flags), Path(args.table), diagnose_settings,
                 Path(args.second_omnimatte) if args.second_omnimatte else None,
                 Path(args.background_fit_file) if args.background_fit_file else None)


def _benchmark(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.benchmark import RESULTS, SUITES, run_suite

    if args.suite == "rendered":
        from omnimatte.rendered.suite import RENDERED, run_rendered_suite

        suite = RENDERED.with_overrides(frames=args.frames, width=args.width, height=args.height, steps=args.steps,
                                        eval_every=args.eval_every, device=args.device, train=settings)
        run_rendered_suite(suite, Path(args.out) if args.out else RESULTS / args.suite,
                           args.presets.split(",") if args.presets else None, flow_weights=args.flow_weights,
                           cache=args.render_cache, render_only=args.render_only)
        return
    if args.suite not in SUITES:
        raise StageError("benchmark", args.suite, f"there is no suite '{args.suite}'",
                         f"choose one of {', '.join([*SUITES, 'rendered'])}")
    if args.render_cache or args.render_only:
        raise StageError("benchmark", args.suite, "--render-cache and --render-only are the rendered suite's",
                         "add --suite rendered, or leave them out")
    suite = SUITES[args.suite].with_overrides(frames=args.frames, width=args.width, height=args.height,
                                              steps=args.steps, eval_every=args.eval_every, device=args.device,
                                              train=settings)
    presets = args.presets.split(",") if args.presets else None
    run_suite(suite, Path(args.out) if args.out else RESULTS / args.suite, presets, flow_weights=args.flow_weights)


def _layers(args: argparse.Namespace):
    from omnimatte.edits import Layers

    return Layers(args.sample, Path(args.omnimatte), args.objects.split(","))


def _camera(args: argparse.Namespace, num_frames: int):
    from omnimatte.contract import load_camera

    return load_camera("edits", args.sample, HomographyFiles(Path(args.homography)), num_frames)


def _remove(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.edits import run_remove

    run_remove(_layers(args), args.object, Path(args.out), **_timing(args, "edits", with_sound=True))


def _colorpop(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.edits import run_colorpop

    run_colorpop(_layers(args), Path(args.frames), args.keep.split(","), Path(args.out),
                 **_timing(args, "edits", with_sound=True))


def _stroboscope(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.edits import run_stroboscope

    layers = _layers(args)
    run_stroboscope(layers, _camera(args, layers.num_frames), args.object, Path(args.out_image), Path(args.out),
                    **_timing(args, "edits"), **settings)


def _replace_background(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.edits import run_replace_background

    layers = _layers(args)
    run_replace_background(layers, _camera(args, layers.num_frames), Path(args.out),
                           **_timing(args, "edits", with_sound=True), **settings)


def _retime(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.edits import run_retime

    layers = _layers(args)
    run_retime(layers, _camera(args, layers.num_frames), args.object, Path(args.out), **_timing(args, "edits"),
               **settings)


def _export(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.export import run_export

    run_export(args.sample, Path(args.video), _frames_info(args, "export"), Path(args.omnimatte),
               args.objects.split(","), Path(args.out), **settings)


def _workflow_config(paths: list[str] | None) -> dict:
    """The workflow's config as Snakemake merges it: config/config.yaml, then each --config file over it."""
    import yaml

    def merge(base: dict, extra: dict) -> dict:
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        return merged

    config: dict = {}
    for path in paths or ([DEFAULT_CONFIG] if Path(DEFAULT_CONFIG).is_file() else []):
        config = merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def _pick(args: argparse.Namespace, settings: dict) -> None:
    import re

    from omnimatte.devices import resolve_device
    from omnimatte.picker import open_session, serve, sheet_sample

    if args.video is None and args.sample is None:
        raise StageError("pick", "?", "neither a video nor a sample given",
                         "run `omnimatte pick VIDEO` for a new video or `omnimatte pick --sample NAME` for a sheet's sample")
    config = _workflow_config(args.config)
    sheets = config.get("sheets") or {"samples": "config/samples.tsv", "objects": "config/objects.tsv"}
    samples_sheet, objects_sheet = Path(sheets["samples"]), Path(sheets["objects"])
    name = args.sample or re.sub(r"[^A-Za-z0-9_-]+", "_", Path(args.video).stem)
    masks = config.get("masks", {})
    checkpoint = masks.get("sam_checkpoint")
    sam = {"sam_model_type": masks.get("sam_model_type", "vit_b"), "sam_checkpoint": Path(checkpoint) if checkpoint else None,
           "device": resolve_device("pick", name, masks.get("device", "auto")) if checkpoint and Path(checkpoint).is_file() else "cpu"}
    try:
        row, objects = sheet_sample(samples_sheet, objects_sheet, name)
    except StageError:
        if args.video is None:
            raise
        row, objects = {"video": args.video}, []
    if args.video is not None and Path(row["video"]).resolve() != Path(args.video).resolve():
        raise StageError("pick", name, f"the sheet's sample '{name}' is the video {row['video']}, not {args.video}",
                         "name the new video's sample with --sample NEW_NAME")
    session = open_session(Path(row["video"]), name, samples_sheet, objects_sheet, start=row.get("start", 0),
                           end=row.get("end"), stride=row.get("stride", 1), objects=objects, **sam)
    serve(session, args.port)


def _contact_sheet(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.report import contact_sheet

    contact_sheet(Path(args.video), Path(args.out), **settings)


def _runtimes(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.report import run_runtimes

    run_runtimes(args.sample, [Path(p) for p in args.benchmarks], Path(args.out_plot), Path(args.out_table))


def _stills(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.stills import make_stills

    make_stills(Path(args.results), Path(args.out), **settings)


def _download_sam(args: argparse.Namespace, settings: dict) -> None:
    from omnimatte.masks import download_sam_weights

    download_sam_weights(args.url, Path(args.dest))


def _subcommand(sub: argparse._SubParsersAction, name: str, handler: Callable, help_text: str, sample: bool = True,
                settings: bool = True) -> argparse.ArgumentParser:
    """A subcommand; one without `settings` refuses --settings (main says so) rather than ignore it."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    if sample:
        p.add_argument("--sample", required=True, help="sample name, used in messages")
    p.add_argument("--settings", default="{}" if settings else None,
                   help="JSON object of the stage's settings (see config/config.yaml)" if settings else argparse.SUPPRESS)
    p.add_argument("--log", help="append the log to this file as well as stderr")
    p.add_argument("--threads", type=int, default=0,
                   help="at most this many CPU threads (0: as many as the CPUs this process may use)")
    p.set_defaults(handler=handler, takes_settings=settings)
    return p


def _add_stages(sub: argparse._SubParsersAction) -> None:
    """The pipeline's stages, in order, and the synthetic demo clip they start from."""
    p = _subcommand(sub, "demo", _demo, "generate a synthetic clip with ground-truth layers", sample=False)
    p.add_argument("--out", required=True, help="output folder (video.mp4, masks/, gt/)")

    p = _subcommand(sub, "frames", _frames, "decode a video into frames at the working resolution")
    p.add_argument("--video", required=True, help="the source video, or a folder of numbered images")
    p.add_argument("--out", required=True, help="frame folder to write")
    p.add_argument("--info", required=True, help="JSON file to write with sizes, count and fps")

    p = _subcommand(sub, "flow", _flow, "forward/backward optical flow (RAFT, or DIS without weights) and confidence")
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preview", required=True)

    p = _subcommand(sub, "masks", _masks, "coarse object masks from SAM prompts or user mask folders")
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--objects", required=True, help="JSON object: name -> {masks: dir} or {box/points, frame}")
    p.add_argument("--flow", help="flow folder, needed to carry SAM prompts through the video")
    p.add_argument("--out", required=True)
    p.add_argument("--preview", required=True)

    p = _subcommand(sub, "homography", _homography, "camera motion: per-frame homographies into one background canvas")
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--masks", help="mask folder (one sub-folder per object) to exclude from matching")
    p.add_argument("--out", required=True)
    p.add_argument("--preview", required=True)

    p = _subcommand(sub, "train", _train, "train the Omnimatte model (the render stage makes its layers)")
    _add_sample_inputs(p, flow_help=None)
    p.add_argument("--train-dir", required=True, help="folder for checkpoints, loss curves and the model")
    p.add_argument("--effect-reach", type=float, help="the config's diagnose.background.effect_reach: object sizes "
                   "from its mask within which an object's effects may lie, where the canvas's starting plate "
                   "distrusts the frames (default: the config's default)")

    p = _subcommand(sub, "render", _render, "render the trained model into the layers (settings: the config's train "
                    "section, whose rendering switches apply)")
    _add_sample_inputs(p, flow_help=None)
    p.add_argument("--model", required=True, help="the train stage's model.pt")
    p.add_argument("--out", required=True, help="omnimatte folder to write (layers/, background/, reconstruction/, "
                   "summary.json)")
    p.add_argument("--background-fit", default="{}",
                   help="JSON object of the background fit's settings (the config's diagnose.background): where "
                   "the camera model cannot explain the background, the effect claim leaves out what stays put")
    p.add_argument("--background-fit-file", help="the background_fit stage's fit (.npz), made with those settings "
                   "(without it the fit is made here)")

    p = _subcommand(sub, "background-fit", _background_fit, "fit the registered background once (for the render "
                    "and diagnose stages): what the camera model explains, frame by frame")
    _add_sample_inputs(p, flow_help=None)
    p.add_argument("--out", required=True, help="background_fit.npz to write")

    p = _subcommand(sub, "composite", _composite, "the overview video omnimatte.mp4", settings=False)
    p.add_argument("--frames", required=True)
    p.add_argument("--frames-info", required=True)
    p.add_argument("--omnimatte", required=True)
    p.add_argument("--objects", required=True)
    p.add_argument("--flow-info", help="the flow stage's info.json, to note a fallback in the video")
    p.add_argument("--flags", help="the diagnose stage's flagged regions, to outline them on the input")
    p.add_argument("--out", required=True)

    p = _subcommand(sub, "evaluate", _evaluate, "score the layers against ground truth (synthetic clips) into "
                    "metrics.json", settings=False)
    p.add_argument("--omnimatte", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--ground-truth", required=True, help="folder with background/, layers/, effects/")
    p.add_argument("--objects", required=True)
    p.add_argument("--masks", help="the coarse masks, to score the mask-only baseline too")
    p.add_argument("--homography", help="the homography folder, to score the median-background baseline too")
    p.add_argument("--sheet", help="PNG to draw: a few frames of layer vs true alpha, with error maps")
    p.add_argument("--out", required=True)

    p = _subcommand(sub, "diagnose", _diagnose, "where the clip breaks the method's assumptions: checks with "
                    "verdicts into diagnostics.json and diagnostics.png")
    _add_sample_inputs(p, flow_help="the flow folder (without it nothing is found to move on its own)")
    p.add_argument("--omnimatte", help="the trained layers (without them the layer checks are skipped)")
    p.add_argument("--second-omnimatte", help="layers of a second training with another seed (check 6)")
    p.add_argument("--background-fit-file", help="the background_fit stage's fit (.npz), made with the settings' "
                   "background section (without it the fit is made here)")
    p.add_argument("--out", required=True, help="diagnostics.json to write")
    p.add_argument("--sheet", required=True, help="diagnostics.png to write")
    p.add_argument("--flags", required=True, help="the flagged regions (.npz) for the overview video")
    p.add_argument("--table", required=True, help="the report's table (.html)")


def _add_sample_inputs(p: argparse.ArgumentParser, flow_help: str | None) -> None:
    """The stage outputs the background fit, train and render stages read: frames, masks, objects, homography and
    flow (required without `flow_help`, else optional with it)."""
    p.add_argument("--frames", required=True)
    p.add_argument("--masks", required=True)
    p.add_argument("--objects", required=True, help="comma-separated object names, back to front")
    p.add_argument("--homography", required=True)
    if flow_help is None:
        p.add_argument("--flow", required=True)
    else:
        p.add_argument("--flow", help=flow_help)


def _add_edits(sub: argparse._SubParsersAction) -> None:
    """What users do with the layers: one video (or still) per edit."""

    def edit(name: str, handler: Callable, help_text: str, camera: bool = True,
             settings: bool = True) -> argparse.ArgumentParser:
        p = _subcommand(sub, name, handler, help_text, settings=settings)
        p.add_argument("--omnimatte", required=True, help="the sample's omnimatte folder (layers/, background/)")
        p.add_argument("--objects", required=True, help="comma-separated object names, back to front")
        p.add_argument("--frames-info", required=True, help="frames_info.json, for the frame rate")
        if camera:
            p.add_argument("--homography", required=True, help="homography folder, to carry layers between frames")
        p.add_argument("--out", required=True, help="the MP4 to write")
        return p

    p = edit("remove", _remove, "the video without one object and its effects (shadow, reflection)", camera=False,
             settings=False)
    p.add_argument("--object", required=True, help="the object to remove")

    p = edit("colorpop", _colorpop, "the video in grey except the kept objects and their effects", camera=False,
             settings=False)
    p.add_argument("--frames", required=True, help="the sample's frames, which are kept in colour")
    p.add_argument("--keep", required=True, help="comma-separated objects to keep in colour")

    p = edit("stroboscope", _stroboscope, "copies of an object at regular intervals: a still and a video "
             "(settings: interval, frame)")
    p.add_argument("--object", required=True, help="the object whose copies are drawn")
    p.add_argument("--out-image", required=True, help="the still (PNG) to write")

    edit("replace-background", _replace_background, "the objects with their effects over a new background "
         "(settings: color [r, g, b], or image and follow_camera)")

    p = edit("retime", _retime, "one layer shifted or frozen in time (settings: shift N, or freeze FRAME)")
    p.add_argument("--object", required=True, help="the object whose layer is retimed")


def _add_outputs(sub: argparse._SubParsersAction) -> None:
    """What is made from finished samples: the export, the report's figures and the docs' stills."""
    p = _subcommand(sub, "export", _export, "full-resolution layers with detail transfer: PNGs and ProRes 4444 with "
                    "alpha (settings: background_detail)")
    p.add_argument("--video", required=True, help="the source video, read at full resolution")
    p.add_argument("--frames-info", required=True, help="frames_info.json: the source size and frame selection")
    p.add_argument("--omnimatte", required=True)
    p.add_argument("--objects", required=True)
    p.add_argument("--out", required=True, help="export folder to write")

    p = _subcommand(sub, "contact-sheet", _contact_sheet, "a few frames of a video stacked into one image (settings: "
                    "count, max_width)", sample=False)
    p.add_argument("--video", required=True, help="the video to take the frames from")
    p.add_argument("--out", required=True, help="JPEG or PNG to write")

    p = _subcommand(sub, "runtimes", _runtimes, "per-stage runtimes of a sample from its benchmark files: a plot and "
                    "a table", settings=False)
    p.add_argument("--benchmarks", required=True, nargs="+", help="benchmarks/{rule}/{sample}.tsv files, in stage order")
    p.add_argument("--out-plot", required=True, help="the plot (PNG) to write")
    p.add_argument("--out-table", required=True, help="the table (HTML) to write")

    p = _subcommand(sub, "stills", _stills, "the README's pictures from a finished sample's edits and export",
                    sample=False)
    p.add_argument("--results", default="results/dog", help="the finished sample's results folder")
    p.add_argument("--out", default="docs/images", help="folder for the stills")


def _add_tools(sub: argparse._SubParsersAction) -> None:
    """The picker for a new video's prompts, the benchmark and SAM's weights."""
    p = _subcommand(sub, "pick", _pick, "draw each object's prompt on a video's frames in a local web page and save "
                    "them as rows of the sample sheets (config/samples.tsv, config/objects.tsv)", sample=False,
                    settings=False)
    p.add_argument("video", nargs="?", help="a new video to pick objects in (its sample is named after the file)")
    p.add_argument("--sample", help="the sample's name: one already in the sheet, or the name for the new video")
    p.add_argument("--config", action="append", help=f"the workflow config(s) for the sheets and the SAM checkpoint "
                   f"(default {DEFAULT_CONFIG}; several merge in order, as Snakemake's --configfile)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free one)")

    p = _subcommand(sub, "benchmark", _benchmark, "train and score every synthetic preset; print and write a results "
                    "table", sample=False)
    p.add_argument("--suite", default="fast", help="fast (the default: the synthetic presets, small, on the CPU), "
                   "demo (the demo's size, the device's settings), full (the paper's network and batch on a GPU), or "
                   "rendered (path-traced clips: the render extra, omnimatte/rendered/)")
    p.add_argument("--presets", help="comma-separated presets (the rendered suite: scenes) to run (default: all)")
    p.add_argument("--render-cache", help="the rendered suite's clip cache (default: $OMNIMATTE_RENDER_CACHE or "
                   "resources/rendered)")
    p.add_argument("--render-only", action="store_true", help="the rendered suite: render the missing clips and "
                   "draw the contact sheet, then stop")
    p.add_argument("--out", help="output folder (default: results/benchmark/SUITE)")
    p.add_argument("--frames", type=int, help="override the suite's frames per clip")
    p.add_argument("--width", type=int, help="override the suite's frame width")
    p.add_argument("--height", type=int, help="override the suite's frame height")
    p.add_argument("--steps", type=int, help="train exactly this many steps (no stopping rule)")
    p.add_argument("--eval-every", type=int, help="score the layers every this many steps")
    p.add_argument("--device", help="override the suite's device (cpu, cuda, auto)")
    p.add_argument("--flow-weights", default="DEFAULT", help="RAFT weights (the DIS fallback when unavailable)")

    p = _subcommand(sub, "download-sam", _download_sam, "download SAM weights (needs internet)", sample=False,
                    settings=False)
    p.add_argument("--url", required=True, help="where to download the checkpoint from (masks.sam_url in the config)")
    p.add_argument("--dest", required=True, help="the checkpoint file to write (masks.sam_checkpoint in the config)")


# What the path flags the stages share mean, for the commands that give no help of their own.
SHARED_FLAG_HELP = {
    "--frames": "the sample's frames folder (the frames stage's)",
    "--frames-info": "the frames stage's frames_info.json (sizes, frame range, frame rate)",
    "--flow": "the sample's flow folder (the flow stage's)",
    "--homography": "the sample's homography folder (the homography stage's)",
    "--masks": "the sample's masks folder, one sub-folder per object (the masks stage's)",
    "--omnimatte": "the sample's omnimatte folder (layers/, background/, reconstruction/)",
    "--objects": "the object names, back to front, comma-separated",
    "--preview": "the preview MP4 to write",
    "--out": "where to write the command's output (its description says what)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnimatte", description=__doc__.splitlines()[0],
        epilog="The Snakemake workflow runs the stages (`snakemake --cores all results/<sample>/omnimatte.mp4`); by "
               "hand one usually runs `omnimatte pick VIDEO` (the prompt picker), `omnimatte benchmark` and "
               "`omnimatte download-sam`. `omnimatte <command> --help` gives a command's flags.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_stages, _add_edits, _add_outputs, _add_tools):
        add(sub)
    for command in sub.choices.values():
        for action in command._actions:
            if action.help is None and action.option_strings:
                action.help = SHARED_FLAG_HELP.get(action.option_strings[0])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.takes_settings and args.settings is not None:
        parser.error(f"`omnimatte {args.command}` has no settings, so --settings would be ignored: leave it out")
    log = setup_logging(args.log)
    fit_threads(args.threads, args.command)  # before any stage loads a library that starts threads
    try:
        settings = json.loads(args.settings) if args.takes_settings else {}
        if not isinstance(settings, dict):
            raise ValueError("--settings must be a JSON object")
        args.handler(args, settings)
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
