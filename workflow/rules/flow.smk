# Stage 2: forward/backward optical flow with its confidence (RAFT; DIS when no weights).


rule flow:
    input:
        unpack(logs_of("frames")),
        frames="results/{sample}/frames",
        info="results/{sample}/frames_info.json",
    output:
        forward="results/{sample}/flow/forward.npy",
        backward="results/{sample}/flow/backward.npy",
        confidence_forward="results/{sample}/flow/confidence_forward.npy",
        confidence_backward="results/{sample}/flow/confidence_backward.npy",
        info="results/{sample}/flow/info.json",
        preview="results/{sample}/previews/flow.mp4",
    params:
        out=lambda wildcards: f"results/{wildcards.sample}/flow",
        settings=settings("flow"),
    threads: threads_for("flow", 4)
    resources:
        mem_mb=8000,
    log:
        "logs/flow/{sample}.log",
    benchmark:
        "benchmarks/flow/{sample}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte flow --sample {wildcards.sample} --frames {input.frames:q} --frames-info {input.info:q}"
        " --out {params.out:q} --preview {output.preview:q} --settings {params.settings}"
        " --threads {threads} --log {log:q}"
