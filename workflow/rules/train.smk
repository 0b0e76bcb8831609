# Stage 5: train the Omnimatte model (GPU when present); the render stage (render.smk) makes its layers.
# results/{sample}/train/checkpoint.pt is deliberately not an output: it must survive a
# failed or killed job so that the rerun resumes from it.


rule train:
    input:
        unpack(logs_of("frames", "flow", "masks", "homography")),
        frames="results/{sample}/frames",
        flow="results/{sample}/flow/forward.npy",
        backward_flow="results/{sample}/flow/backward.npy",
        confidence="results/{sample}/flow/confidence_forward.npy",
        backward_confidence="results/{sample}/flow/confidence_backward.npy",
        homographies="results/{sample}/homography/homographies.npy",
        canvas="results/{sample}/homography/canvas.json",
        masks="results/{sample}/masks",
    output:
        model="results/{sample}/train/model.pt",
        losses="results/{sample}/train/losses.csv",
        plot=report("results/{sample}/train/losses.png", caption="../report/losses.rst", category="{sample}", subcategory="Training"),
        summary="results/{sample}/train/summary.json",
    params:
        objects=object_names,
        flow=lambda wildcards: f"results/{wildcards.sample}/flow",
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        train_dir=lambda wildcards: f"results/{wildcards.sample}/train",
        effect_reach=effect_reach(),
        settings=train_settings(),
    threads: threads_for("train", 8)
    resources:
        mem_mb=16000,
        gpu=1,
    log:
        "logs/train/{sample}.log",
    benchmark:
        "benchmarks/train/{sample}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte train --sample {wildcards.sample} --frames {input.frames:q} --flow {params.flow:q}"
        " --homography {params.homography:q} --masks {input.masks:q} --objects {params.objects:q}"
        " --train-dir {params.train_dir:q} --effect-reach {params.effect_reach} --settings {params.settings}"
        " --threads {threads} --log {log:q}"
