# Omnimatte: split a video into per-object RGBA layers that carry each object's effects.
# Usage: snakemake --cores 8 results/dog/omnimatte.mp4   (see README.md)

from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/masks.smk"
include: "workflow/rules/homography.smk"
include: "workflow/rules/background_fit.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/composite.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/diagnose.smk"
include: "workflow/rules/edits.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        expand("results/{sample}/omnimatte.mp4", sample=SAMPLES),
        expand("results/{sample}/metrics.json", sample=[name for name, s in SAMPLES.items() if "demo" in s]),
        expand("results/{sample}/diagnostics.json", sample=SAMPLES),
        rules.report_figures.input,
