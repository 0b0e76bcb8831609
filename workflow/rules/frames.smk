# Stage 1: frames at the working resolution.


rule frames:
    input:
        video=lambda wildcards: sample_of(wildcards)["video"],
    output:
        frames=directory("results/{video}/frames"),
        info="results/{video}/frames_info.json",
    params:
        options=frames_options,
    log:
        "logs/frames/{video}.log",
    benchmark:
        "benchmarks/frames/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte frames --sample {wildcards.video} --video {input.video} --out {output.frames}"
        " --info {output.info} --options {params.options} --log {log}"
