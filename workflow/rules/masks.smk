# Stage 3: coarse masks per object, from the user's folders or SAM prompts carried by the flow.


rule sam_weights:
    output:
        config["masks"]["sam_checkpoint"],
    params:
        url=config["masks"]["sam_url"],
    log:
        "logs/sam_weights/download.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte download-sam --url {params.url:q} --dest {output:q} --log {log:q}"


rule masks:
    input:
        unpack(mask_inputs),
    output:
        masks=directory("results/{sample}/masks"),
        preview="results/{sample}/previews/masks.mp4",
    params:
        objects=objects_json,
        flow=lambda wildcards: f"--flow {shlex.quote(f'results/{wildcards.sample}/flow')}" if uses_sam(wildcards) else "",
        settings=settings("masks"),
    threads: threads_for("masks", 4)
    resources:
        mem_mb=8000,
    log:
        "logs/masks/{sample}.log",
    benchmark:
        "benchmarks/masks/{sample}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte masks --sample {wildcards.sample} --frames {input.frames:q} --frames-info {input.info:q}"
        " --objects {params.objects} {params.flow} --out {output.masks:q} --preview {output.preview:q}"
        " --settings {params.settings} --threads {threads} --log {log:q}"
