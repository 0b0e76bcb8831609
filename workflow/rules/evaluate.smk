# Scores for samples that carry ground truth (the synthetic demo clips).


rule evaluate:
    input:
        unpack(logs_of("frames", "masks", "homography", "render")),
        frames="results/{sample}/frames",
        masks="results/{sample}/masks",
        homographies="results/{sample}/homography/homographies.npy",
        canvas="results/{sample}/homography/canvas.json",
        omnimatte="results/{sample}/omnimatte",
        ground_truth=ground_truth_dir,
    output:
        metrics="results/{sample}/metrics.json",
        sheet="results/{sample}/evaluation.png",
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
    log:
        "logs/evaluate/{sample}.log",
    benchmark:
        "benchmarks/evaluate/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte evaluate --sample {wildcards.sample} --omnimatte {input.omnimatte:q}"
        " --frames {input.frames:q} --ground-truth {input.ground_truth:q} --masks {input.masks:q}"
        " --homography {params.homography:q} --objects {params.objects:q} --out {output.metrics:q}"
        " --sheet {output.sheet:q} --log {log:q}"
