# Stage 1: frames at the working resolution.


rule frames:
    input:
        unpack(frames_inputs),
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
        "$OMNIMATTE_PYTHON -m omnimatte frames --sample {wildcards.video} --video {input.video:q} --out {output.frames:q}"
        " --info {output.info:q} --options {params.options} --log {log:q}"
