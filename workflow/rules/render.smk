# Stage 5b: render the trained model into the layers (the train section's rendering switches apply: changing one
# reruns this stage alone). The background's fit, which only the rendering steps read, is no input of training.


rule render:
    input:
        unpack(logs_of("frames", "flow", "masks", "homography", "background_fit", "train")),
        frames="results/{sample}/frames",
        flow="results/{sample}/flow/forward.npy",
        backward_flow="results/{sample}/flow/backward.npy",
        confidence="results/{sample}/flow/confidence_forward.npy",
        backward_confidence="results/{sample}/flow/confidence_backward.npy",
        homographies="results/{sample}/homography/homographies.npy",
        canvas="results/{sample}/homography/canvas.json",
        masks="results/{sample}/masks",
        background_fit="results/{sample}/background_fit.npz",
        model="results/{sample}/train/model.pt",
    output:
        omnimatte=directory("results/{sample}/omnimatte"),
    params:
        objects=object_names,
        flow=lambda wildcards: f"results/{wildcards.sample}/flow",
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        settings=settings("train"),
        background_fit=background_fit_settings(),
    threads: threads_for("render", 8)
    resources:
        mem_mb=16000,
        gpu=1,
    log:
        "logs/render/{sample}.log",
    benchmark:
        "benchmarks/render/{sample}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte render --sample {wildcards.sample} --frames {input.frames:q} --flow {params.flow:q}"
        " --homography {params.homography:q} --masks {input.masks:q} --objects {params.objects:q}"
        " --model {input.model:q} --out {output.omnimatte:q} --settings {params.settings}"
        " --background-fit {params.background_fit} --background-fit-file {input.background_fit:q} --threads {threads}"
        " --log {log:q}"
