# Full-resolution layers for compositing tools: straight-alpha PNG sequences and ProRes 4444
# movies with alpha per layer, and the background plate, at the source video's size.


rule export:
    input:
        video=source_video,
        info="results/{video}/frames_info.json",
        omnimatte="results/{video}/omnimatte",
    output:
        export=directory("results/{video}/export"),
    params:
        objects=object_names,
        options=options("export"),
    resources:
        mem_mb=4000,
    log:
        "logs/export/{video}.log",
    benchmark:
        "benchmarks/export/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte export --sample {wildcards.video} --video {input.video} --frames-info {input.info}"
        " --omnimatte {input.omnimatte} --objects {params.objects} --options {params.options}"
        " --out {output.export} --log {log}"


rule exports:
    input:
        expand("results/{video}/export", video=SAMPLES),
