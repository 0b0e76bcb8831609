# Samples (the config's `samples:` and the sample sheets), config validation and input functions shared by the rules.

import json
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.settings.types import DeploymentMethod

# The Snakefile's own helpers use the standard library (and Snakemake's jsonschema and
# pandas) only, so they import from this checkout in Snakemake's environment, installed or
# not: the package of this checkout, as the jobs use it (see the prefix below).
sys.path.insert(0, workflow.basedir)

from omnimatte.config_check import MASKS_OR_PROMPT, config_problems
from omnimatte.locks import record_owner, remove_stale_locks
from omnimatte.folders import IMAGE_SUFFIXES, MASK_SUFFIXES, folder_files
from omnimatte.render_switches import training_settings
from omnimatte.samples import missing_config_paths, prompts_outside_the_frame, samples_of_config


_problems = config_problems(config, yaml.safe_load(Path(workflow.basedir, "workflow/schemas/config.schema.yaml").read_text()))
if _problems:
    raise ValueError("Invalid config (your --configfile files merged over config/config.yaml):\n  " + "\n  ".join(_problems))

# A bad row of a sheet stops here, before any job, naming the sheet, its line and the column; so does a video or
# mask folder that does not exist.
SAMPLES = samples_of_config(config, schema_dir=Path(workflow.basedir) / "workflow" / "schemas", check_paths=True)

# A run killed outright leaves Snakemake's locks behind; those whose run has provably
# ended are removed, so running the same command again works (see omnimatte/locks.py).
# A dry run leaves them: it changes nothing on disk, and Snakemake only warns of a lock then.
if workflow.is_main_process and not workflow.output_settings.dryrun:
    for _owner in remove_stale_locks():
        print(f"Removed {_owner['lock']}: the Snakemake run that held it (process {_owner['pid']} on {_owner['host']}) "
              "was killed without unlocking.", file=sys.stderr)


onstart:
    record_owner(getattr(workflow.persistence, "_lockfile", {}).values())

# Jobs run `$OMNIMATTE_PYTHON -m omnimatte <stage>`: the interpreter that runs Snakemake,
# so that `/path/to/venv/bin/snakemake` works without activating the venv (the first
# `python` on PATH may be another one, or none). Under --use-conda each rule's env brings
# its own python. They run the package of this checkout, whether or not it is installed:
# also inside the per-rule conda envs and on cluster nodes.
PYTHON = "python" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else sys.executable
shell.prefix(f"OMNIMATTE_PYTHON={shlex.quote(PYTHON)}; "
             f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


wildcard_constraints:
    sample="[A-Za-z0-9_-]+",
    demo="[A-Za-z0-9_-]+",
    object="[A-Za-z0-9_-]+",
    objects="[A-Za-z0-9_+-]+",
    background="[A-Za-z0-9_-]+",
    retiming="shift|freeze",
    sheet="overview|masks|flow",


def _check_samples():
    """Checks the schema cannot express, with messages that name the sample and key: the `samples:` videos and mask
    folders exist; prompts against the video's frame size, so none waits for SAM's weights to be downloaded."""
    # A sheet's missing paths are refused at its row; a demo's files are made by the demo rule.
    problems = missing_config_paths(config.get("samples") or {},
                                    [f"resources/demo/{demo}" for demo in config.get("demo", {})])
    for name, sample in SAMPLES.items():
        if "demo" in sample and sample["demo"] not in config.get("demo", {}):
            problems.append(f"samples.{name}.demo: '{sample['demo']}' is not a clip under `demo` "
                            f"(have: {', '.join(config.get('demo', {})) or 'none'})")
        for obj, spec in sample["objects"].items():
            if "masks" in spec and ("box" in spec or "points" in spec):
                problems.append(f"samples.{name}.objects.{obj}: {MASKS_OR_PROMPT}")
            if "labels" in spec and len(spec["labels"]) != len(spec.get("points", [])):
                problems.append(f"samples.{name}.objects.{obj}.labels: one label per point is needed")
        in_config = name in (config.get("samples") or {})  # a sheet's prompts are checked at their rows
        if in_config and "demo" not in sample and Path(sample["video"]).exists():
            outside = prompts_outside_the_frame(name, sample["objects"], sample["video"])
            problems += [f"samples.{name}.objects.{obj}: {problem}" for obj, problem in outside.items()]
    if problems:
        raise ValueError("Invalid config:\n  " + "\n  ".join(problems))


_check_samples()


def sample_of(wildcards):
    """The sample the target's {sample} names: its settings, with `video` the path of its source."""
    if wildcards.sample not in SAMPLES:
        raise ValueError(f"unknown sample '{wildcards.sample}'; the config has: {', '.join(SAMPLES)}")
    return SAMPLES[wildcards.sample]


def object_names(wildcards):
    """The sample's objects, back to front, as the comma-separated list the CLI takes."""
    return ",".join(sample_of(wildcards)["objects"])


def uses_sam(wildcards):
    return any("masks" not in spec for spec in sample_of(wildcards)["objects"].values())


def settings(section, **overrides):
    """A config section as one shell-quoted JSON argument for `omnimatte <stage> --settings`."""
    values = dict(config.get(section, {}))
    values.update(overrides)
    return shlex.quote(json.dumps(values))


def train_settings(**overrides):
    """The config's train section without its rendering switches (render_switches.RENDER_ONLY), as one
    shell-quoted JSON argument: the train rule's, so that changing a switch reruns the render rule alone."""
    values = training_settings(config.get("train", {}))
    values.update(overrides)
    return shlex.quote(json.dumps(values))


def background_fit_settings():
    """The config's diagnose.background (the registered background's fit, which the render stage's effect claim
    consults too) as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(config.get("diagnose", {}).get("background", {})))


def effect_reach():
    """The config's diagnose.background.effect_reach: how far from its mask an object's effects may lie, which the
    train stage's starting plate distrusts (a number, for `omnimatte train --effect-reach`)."""
    return float(config["diagnose"]["background"]["effect_reach"])


def frames_inputs(wildcards):
    """The source video; for an image sequence (a folder) also each of its images, so an image edited in place,
    added or removed remakes the frames."""
    video = sample_of(wildcards)["video"]
    return {"video": video, "images": [str(path) for path in folder_files(video, IMAGE_SUFFIXES)]}


def frames_settings(wildcards):
    sample = sample_of(wildcards)
    extra = {key: sample[key] for key in ("start", "end", "stride") if key in sample}
    return settings("frames", **extra)


def objects_json(wildcards):
    return shlex.quote(json.dumps(sample_of(wildcards)["objects"]))


def logs_of(*rules):
    """The logs of the jobs that make a rule's inputs, as extra inputs: `input: unpack(logs_of("train"))`.

    Snakemake keeps an output whose inputs are missing (it takes them for deleted
    intermediates), so after a killed `--forcerun train` the old omnimatte.mp4 would
    pass for up to date with no layers behind it. A failed or killed job's outputs are
    deleted but its log is kept and is newer than what was made from the old outputs,
    so depending on the log remakes them.
    """
    return lambda wildcards: {f"log_{rule}": f"logs/{rule}/{wildcards.sample}.log" for rule in rules}


def mask_inputs(wildcards):
    """Frames always; the forward and backward flow and the SAM checkpoint only when some object is prompted;
    each user mask folder and each of its masks, so a mask edited in place, added or removed remakes the masks."""
    inputs = {
        "frames": f"results/{wildcards.sample}/frames",
        "info": f"results/{wildcards.sample}/frames_info.json",
        **logs_of("frames")(wildcards),
    }
    sample = sample_of(wildcards)
    if uses_sam(wildcards):
        inputs["forward_flow"] = f"results/{wildcards.sample}/flow/forward.npy"
        inputs["backward_flow"] = f"results/{wildcards.sample}/flow/backward.npy"
        inputs.update(logs_of("flow")(wildcards))
        inputs["checkpoint"] = config["masks"]["sam_checkpoint"]
    if "demo" not in sample:  # a demo's mask folders appear with its video, before the frames exist
        for obj, spec in sample["objects"].items():
            if "masks" in spec:
                inputs[f"user_masks_{obj}"] = [spec["masks"], *map(str, folder_files(spec["masks"], MASK_SUFFIXES))]
    return inputs


def threads_for(stage, default=1):
    return config.get("threads", {}).get(stage, default)


def ground_truth_dir(wildcards):
    """A demo sample's ground-truth folder; other samples have none to score against."""
    sample = sample_of(wildcards)
    if "demo" not in sample:
        raise ValueError(f"sample '{wildcards.sample}' has no ground truth: only synthetic `demo` samples can be "
                         f"evaluated (these can: {', '.join(n for n, s in SAMPLES.items() if 'demo' in s) or 'none'})")
    return f"resources/demo/{sample['demo']}/gt"


# ------------------------------------------------------------ edits, export and report


def _check_edits():
    """Each sample's edit_objects must be among its objects."""
    problems = []
    for name, sample in SAMPLES.items():
        unknown = [obj for obj in sample.get("edit_objects", []) if obj not in sample["objects"]]
        if unknown:
            problems.append(f"samples.{name}.edit_objects: {', '.join(unknown)} not among the sample's objects "
                            f"({', '.join(sample['objects'])})")
    if problems:
        raise ValueError("Invalid config:\n  " + "\n  ".join(problems))


_check_edits()


def edit_inputs(camera, sound):
    """An edit's input function: the layers and the frames info; with `camera`, the homographies and canvas that
    carry layers between frames; with `sound`, the source video, whose sound an edit that spans the clip carries.
    A target naming an object the sample lacks stops there, listing the sample's objects."""

    def inputs(wildcards):
        sample = sample_of(wildcards)
        named = []
        if "object" in wildcards.keys():
            named.append(wildcards.object)
        if "objects" in wildcards.keys():
            named.extend(wildcards.objects.split("+"))
        unknown = [name for name in named if name not in sample["objects"]]
        if unknown:
            raise ValueError(f"sample '{wildcards.sample}' has no object {', '.join(repr(n) for n in unknown)}; "
                             f"its objects are: {', '.join(sample['objects'])} (join several with '+', e.g. colorpop_a+b.mp4)")
        files = {"omnimatte": f"results/{wildcards.sample}/omnimatte", "info": f"results/{wildcards.sample}/frames_info.json",
                 **logs_of("frames", "render")(wildcards)}
        if camera:
            files.update({"homographies": f"results/{wildcards.sample}/homography/homographies.npy",
                          "canvas": f"results/{wildcards.sample}/homography/canvas.json", **logs_of("homography")(wildcards)})
        if sound:
            files["video"] = sample["video"]
        return files

    return inputs


def edit_settings(name):
    """One entry of the config's `edits` section as the JSON argument of an edit command."""
    return shlex.quote(json.dumps(config["edits"][name]))


def background_settings(wildcards):
    """A named replacement background from edits.backgrounds; an unknown name lists the configured ones."""
    backgrounds = config["edits"]["backgrounds"]
    if wildcards.background not in backgrounds:
        raise ValueError(f"no background '{wildcards.background}' under edits.backgrounds; "
                         f"the config has: {', '.join(backgrounds) or 'none'}")
    return shlex.quote(json.dumps(backgrounds[wildcards.background]))


def background_image(wildcards):
    """The image file of a replacement background, so Snakemake remakes the edit when it changes."""
    spec = config["edits"]["backgrounds"].get(wildcards.background, {})
    return [spec["image"]] if "image" in spec else []


def edit_targets(sample):
    """The edits `snakemake edits` makes for a sample: each of its edit_objects (default: all its objects)
    removed, strobed, shifted and frozen; all of them in a colour pop; each configured background."""
    settings = SAMPLES[sample]
    objects = settings.get("edit_objects") or list(settings["objects"])
    root = f"results/{sample}/edits"
    targets = [f"{root}/{kind}_{obj}.{ext}" for obj in objects
               for kind, ext in (("remove", "mp4"), ("stroboscope", "png"), ("stroboscope", "mp4"),
                                 ("shift", "mp4"), ("freeze", "mp4"))]
    targets.append(f"{root}/colorpop_{'+'.join(objects)}.mp4")
    targets += [f"{root}/background_{name}.mp4" for name in config["edits"]["backgrounds"]]
    return targets


def source_video(wildcards):
    return sample_of(wildcards)["video"]


SHEETS = ("overview", "masks", "flow")


def sheet_video(wildcards):
    """The video a contact sheet shows."""
    return {"overview": f"results/{wildcards.sample}/omnimatte.mp4",
            "masks": f"results/{wildcards.sample}/previews/masks.mp4",
            "flow": f"results/{wildcards.sample}/previews/flow.mp4"}[wildcards.sheet]


def stage_benchmarks(wildcards):
    """The benchmark files of the stages that made a sample's omnimatte, in pipeline order."""
    sample = sample_of(wildcards)
    stages = ["frames", "flow", "masks", "homography", "background_fit", "train", "render", "diagnose", "composite"]
    made_by_demo = [f"benchmarks/demo_clip/{sample['demo']}.tsv"] if "demo" in sample else []
    return made_by_demo + [f"benchmarks/{stage}/{wildcards.sample}.tsv" for stage in stages]


# ------------------------------------------------------------ diagnose


def diagnose_second_seed(wildcards):
    """The second training's layers, when diagnose.seeds.enabled asks for the agreement of two seeds."""
    if not config.get("diagnose", {}).get("seeds", {}).get("enabled", False):
        return {}
    return {"second_omnimatte": f"results/{wildcards.sample}/second_seed/omnimatte", **logs_of("render_second_seed")(wildcards)}


def diagnose_flags(wildcards):
    """The flagged regions, for the overview video when diagnose.show_in_overview is set."""
    shown = config.get("diagnose", {}).get("show_in_overview", True)
    return {"flags": f"results/{wildcards.sample}/diagnostics_flags.npz"} if shown else {}
