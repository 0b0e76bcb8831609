# Stage 6: the overview video.


rule composite:
    input:
        unpack(logs_of("frames", "flow", "train")),
        unpack(diagnose_flags),
        frames="results/{video}/frames",
        info="results/{video}/frames_info.json",
        flow_info="results/{video}/flow/info.json",
        omnimatte="results/{video}/omnimatte",
    output:
        video=report("results/{video}/omnimatte.mp4", caption="../report/overview.rst", category="{video}", subcategory="Overview"),
    params:
        objects=object_names,
        flags=lambda wildcards, input: f"--flags {shlex.quote(input.flags)}" if "flags" in input.keys() else "",
    log:
        "logs/composite/{video}.log",
    benchmark:
        "benchmarks/composite/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte composite --sample {wildcards.video} --frames {input.frames:q} --frames-info {input.info:q}"
        " --omnimatte {input.omnimatte:q} --objects {params.objects:q} --flow-info {input.flow_info:q} {params.flags}"
        " --out {output.video:q} --log {log:q}"
