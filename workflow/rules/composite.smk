# Stage 6: the overview video.


rule composite:
    input:
        unpack(logs_of("frames", "flow", "train")),
        frames="results/{video}/frames",
        info="results/{video}/frames_info.json",
        flow_info="results/{video}/flow/info.json",
        omnimatte="results/{video}/omnimatte",
    output:
        video=report("results/{video}/omnimatte.mp4", caption="../report/overview.rst", category="{video}", subcategory="Overview"),
    params:
        objects=object_names,
    log:
        "logs/composite/{video}.log",
    benchmark:
        "benchmarks/composite/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte composite --sample {wildcards.video} --frames {input.frames:q} --frames-info {input.info:q}"
        " --omnimatte {input.omnimatte:q} --objects {params.objects:q} --flow-info {input.flow_info:q}"
        " --out {output.video:q} --log {log:q}"
