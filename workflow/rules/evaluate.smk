# Scores for samples that carry ground truth (the synthetic demo clips).


rule evaluate:
    input:
        unpack(logs_of("frames", "masks", "homography", "train")),
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
        "$OMNIMATTE_PYTHON -m omnimatte evaluate --sample {wildcards.video} --omnimatte {input.omnimatte:q}"
        " --frames {input.frames:q} --ground-truth {input.ground_truth:q} --masks {input.masks:q}"
        " --homography {params.homography:q} --objects {params.objects:q} --out {output.metrics:q}"
        " --sheet {output.sheet:q} --log {log:q}"
