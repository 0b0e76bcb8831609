# Stage 4b: how well the registered background explains each frame (diagnose.background), fitted once: the render
# stage's effect claim and the diagnose stage's checks read it.


rule background_fit:
    input:
        unpack(logs_of("frames", "flow", "masks", "homography")),
        frames="results/{sample}/frames",
        masks="results/{sample}/masks",
        homographies="results/{sample}/homography/homographies.npy",
        canvas="results/{sample}/homography/canvas.json",
        flow="results/{sample}/flow/forward.npy",
        backward_flow="results/{sample}/flow/backward.npy",
        confidence="results/{sample}/flow/confidence_forward.npy",
        backward_confidence="results/{sample}/flow/confidence_backward.npy",
    output:
        fit="results/{sample}/background_fit.npz",
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        flow=lambda wildcards: f"results/{wildcards.sample}/flow",
        settings=background_fit_settings(),
    threads: threads_for("background_fit", 2)
    log:
        "logs/background_fit/{sample}.log",
    benchmark:
        "benchmarks/background_fit/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte background-fit --sample {wildcards.sample} --frames {input.frames:q}"
        " --masks {input.masks:q} --objects {params.objects:q} --homography {params.homography:q}"
        " --flow {params.flow:q} --out {output.fit:q} --settings {params.settings} --threads {threads} --log {log:q}"
