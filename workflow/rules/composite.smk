# Stage 6: the overview video.


rule composite:
    input:
        unpack(logs_of("frames", "flow", "render")),
        unpack(diagnose_flags),
        frames="results/{sample}/frames",
        info="results/{sample}/frames_info.json",
        flow_info="results/{sample}/flow/info.json",
        omnimatte="results/{sample}/omnimatte",
    output:
        video=report("results/{sample}/omnimatte.mp4", caption="../report/overview.rst", category="{sample}", subcategory="Overview"),
    params:
        objects=object_names,
        flags=lambda wildcards, input: f"--flags {shlex.quote(input.flags)}" if "flags" in input.keys() else "",
    log:
        "logs/composite/{sample}.log",
    benchmark:
        "benchmarks/composite/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte composite --sample {wildcards.sample} --frames {input.frames:q} --frames-info {input.info:q}"
        " --omnimatte {input.omnimatte:q} --objects {params.objects:q} --flow-info {input.flow_info:q} {params.flags}"
        " --out {output.video:q} --log {log:q}"
