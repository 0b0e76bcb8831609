# Stage 2: forward/backward optical flow with its confidence (RAFT; DIS when no weights).


rule flow:
    input:
        unpack(logs_of("frames")),
        frames="results/{video}/frames",
        info="results/{video}/frames_info.json",
    output:
        forward="results/{video}/flow/forward.npy",
        backward="results/{video}/flow/backward.npy",
        confidence_forward="results/{video}/flow/confidence_forward.npy",
        confidence_backward="results/{video}/flow/confidence_backward.npy",
        info="results/{video}/flow/info.json",
        preview="results/{video}/previews/flow.mp4",
    params:
        out=lambda wildcards: f"results/{wildcards.video}/flow",
        options=options("flow"),
    threads: threads_for("flow", 4)
    resources:
        mem_mb=8000,
    log:
        "logs/flow/{video}.log",
    benchmark:
        "benchmarks/flow/{video}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte flow --sample {wildcards.video} --frames {input.frames:q} --frames-info {input.info:q}"
        " --out {params.out:q} --preview {output.preview:q} --options {params.options}"
        " --threads {threads} --log {log:q}"
