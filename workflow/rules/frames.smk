# Stage 1: frames at the working resolution.


rule frames:
    input:
        unpack(frames_inputs),
    output:
        frames=directory("results/{sample}/frames"),
        info="results/{sample}/frames_info.json",
    params:
        settings=frames_settings,
    log:
        "logs/frames/{sample}.log",
    benchmark:
        "benchmarks/frames/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte frames --sample {wildcards.sample} --video {input.video:q} --out {output.frames:q}"
        " --info {output.info:q} --settings {params.settings} --log {log:q}"
