# Stage 6: the overview video.


rule composite:
    input:
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
        "$OMNIMATTE_PYTHON -m omnimatte composite --sample {wildcards.video} --frames {input.frames} --frames-info {input.info}"
        " --omnimatte {input.omnimatte} --objects {params.objects} --flow-info {input.flow_info}"
        " --out {output.video} --log {log}"
