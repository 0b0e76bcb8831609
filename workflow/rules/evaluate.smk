# Scores for samples that carry ground truth (the synthetic demo clips).


rule evaluate:
    input:
        frames="results/{video}/frames",
        masks="results/{video}/masks",
        homographies="results/{video}/homography/homographies.npy",
        canvas="results/{video}/homography/canvas.json",
        omnimatte="results/{video}/omnimatte",
        ground_truth=ground_truth_dir,
    output:
        metrics="results/{video}/metrics.json",
        sheet="results/{video}/evaluation.png",
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.video}/homography",
    log:
        "logs/evaluate/{video}.log",
    benchmark:
        "benchmarks/evaluate/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte evaluate --sample {wildcards.video} --omnimatte {input.omnimatte}"
        " --frames {input.frames} --ground-truth {input.ground_truth} --masks {input.masks}"
        " --homography {params.homography} --objects {params.objects} --out {output.metrics}"
        " --sheet {output.sheet} --log {log}"
