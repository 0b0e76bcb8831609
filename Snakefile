# Omnimatte: split a video into per-object RGBA layers that carry each object's effects.
# Usage: snakemake --cores 8 results/dog/omnimatte.mp4   (see README.md)

import os

from snakemake.utils import min_version

min_version("8.0")

# Rules run `python -m omnimatte`; this makes the checkout's package importable in
# every job (also inside conda envs and on cluster nodes) without installing it.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/masks.smk"
include: "workflow/rules/homography.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/composite.smk"


rule all:
    input:
        expand("results/{video}/omnimatte.mp4", video=SAMPLES),
