# Scores for samples that carry ground truth (the synthetic demo clips).


rule evaluate:
    input:
        frames="results/{video}/frames",
        masks="results/{video}/masks",
        omnimatte="results/{video}/omnimatte",
        ground_truth=ground_truth_dir,
    output:
        metrics="results/{video}/metrics.json",
    params:
        objects=object_names,
    log:
        "logs/evaluate/{video}.log",
    benchmark:
        "benchmarks/evaluate/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "python -m omnimatte evaluate --sample {wildcards.video} --omnimatte {input.omnimatte}"
        " --frames {input.frames} --ground-truth {input.ground_truth} --masks {input.masks}"
        " --objects {params.objects} --out {output.metrics} --log {log}"
