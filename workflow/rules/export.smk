# Full-resolution layers for compositing tools: straight-alpha PNG sequences and ProRes 4444
# movies with alpha per layer, and the background plate, at the source video's size.


rule export:
    input:
        unpack(logs_of("frames", "render")),
        video=source_video,
        info="results/{sample}/frames_info.json",
        omnimatte="results/{sample}/omnimatte",
    output:
        export=directory("results/{sample}/export"),
    params:
        objects=object_names,
        settings=settings("export"),
    resources:
        mem_mb=4000,
    log:
        "logs/export/{sample}.log",
    benchmark:
        "benchmarks/export/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte export --sample {wildcards.sample} --video {input.video:q} --frames-info {input.info:q}"
        " --omnimatte {input.omnimatte:q} --objects {params.objects:q} --settings {params.settings}"
        " --out {output.export:q} --log {log:q}"


rule exports:
    input:
        expand("results/{sample}/export", sample=SAMPLES),
