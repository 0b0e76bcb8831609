# Sample table, config validation and input functions shared by the rules.

import json
import shlex
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

SAMPLES = config["samples"]

# Jobs run `python -m omnimatte <stage>` from this checkout, whether or not the package
# is installed: also inside the per-rule conda envs and on cluster nodes.
shell.prefix(f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


wildcard_constraints:
    video="[A-Za-z0-9_-]+",
    demo="[A-Za-z0-9_-]+",


def _check_samples():
    """Checks the schema cannot express, with messages that name the sample and key."""
    problems = []
    for name, sample in SAMPLES.items():
        if "demo" in sample and sample["demo"] not in config.get("demo", {}):
            problems.append(f"samples.{name}.demo: '{sample['demo']}' is not a clip under `demo` "
                            f"(have: {', '.join(config.get('demo', {})) or 'none'})")
        for obj, spec in sample["objects"].items():
            if "masks" in spec and ("box" in spec or "points" in spec):
                problems.append(f"samples.{name}.objects.{obj}: give either `masks` or a prompt (box/points), not both")
            if "labels" in spec and len(spec["labels"]) != len(spec.get("points", [])):
                problems.append(f"samples.{name}.objects.{obj}.labels: one label per point is needed")
    if problems:
        raise ValueError("Invalid config:\n  " + "\n  ".join(problems))


_check_samples()


def sample_of(wildcards):
    if wildcards.video not in SAMPLES:
        raise ValueError(f"unknown sample '{wildcards.video}'; the config has: {', '.join(SAMPLES)}")
    return SAMPLES[wildcards.video]


def object_names(wildcards):
    """The sample's objects, back to front, as the comma-separated list the CLI takes."""
    return ",".join(sample_of(wildcards)["objects"])


def uses_sam(wildcards):
    return any("masks" not in spec for spec in sample_of(wildcards)["objects"].values())


def options(section, **overrides):
    """A config section as one shell-quoted JSON argument for `omnimatte <stage> --options`."""
    values = dict(config.get(section, {}))
    values.update(overrides)
    return shlex.quote(json.dumps(values))


def frames_options(wildcards):
    sample = sample_of(wildcards)
    extra = {key: sample[key] for key in ("start", "end", "stride") if key in sample}
    return options("frames", **extra)


def objects_json(wildcards):
    return shlex.quote(json.dumps(sample_of(wildcards)["objects"]))


def mask_inputs(wildcards):
    """Frames always; flow and the SAM checkpoint only when some object is prompted; user mask folders."""
    inputs = {
        "frames": f"results/{wildcards.video}/frames",
        "info": f"results/{wildcards.video}/frames_info.json",
    }
    sample = sample_of(wildcards)
    if uses_sam(wildcards):
        inputs["flow"] = f"results/{wildcards.video}/flow/forward.npy"
        inputs["checkpoint"] = config["masks"]["sam_checkpoint"]
    if "demo" not in sample:  # a demo's mask folders appear with its video, before the frames exist
        for obj, spec in sample["objects"].items():
            if "masks" in spec:
                inputs[f"user_masks_{obj}"] = spec["masks"]
    return inputs


def threads_for(stage, default=1):
    return config.get("threads", {}).get(stage, default)


def ground_truth_dir(wildcards):
    """A demo sample's ground-truth folder; other samples have none to score against."""
    sample = sample_of(wildcards)
    if "demo" not in sample:
        raise ValueError(f"sample '{wildcards.video}' has no ground truth: only synthetic `demo` samples can be "
                         f"evaluated (these can: {', '.join(n for n, s in SAMPLES.items() if 'demo' in s) or 'none'})")
    return f"resources/demo/{sample['demo']}/gt"
