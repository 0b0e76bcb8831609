# Stage 5: train the Omnimatte model (GPU when present) and render the layers.
# results/{video}/train/checkpoint.pt is deliberately not an output: it must survive a
# failed or killed job so that the rerun resumes from it.


rule train:
    input:
        unpack(logs_of("frames", "flow", "masks", "homography")),
        frames="results/{video}/frames",
        flow="results/{video}/flow/forward.npy",
        backward_flow="results/{video}/flow/backward.npy",
        confidence="results/{video}/flow/confidence_forward.npy",
        homographies="results/{video}/homography/homographies.npy",
        canvas="results/{video}/homography/canvas.json",
        masks="results/{video}/masks",
    output:
        omnimatte=directory("results/{video}/omnimatte"),
        model="results/{video}/train/model.pt",
        losses="results/{video}/train/losses.csv",
        plot=report("results/{video}/train/losses.png", caption="../report/losses.rst", category="{video}", subcategory="Training"),
        summary="results/{video}/train/summary.json",
    params:
        objects=object_names,
        flow=lambda wildcards: f"results/{wildcards.video}/flow",
        homography=lambda wildcards: f"results/{wildcards.video}/homography",
        train_dir=lambda wildcards: f"results/{wildcards.video}/train",
        options=options("train"),
    threads: threads_for("train", 8)
    resources:
        mem_mb=16000,
        gpu=1,
    log:
        "logs/train/{video}.log",
    benchmark:
        "benchmarks/train/{video}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte train --sample {wildcards.video} --frames {input.frames:q} --flow {params.flow:q}"
        " --homography {params.homography:q} --masks {input.masks:q} --objects {params.objects:q}"
        " --out {output.omnimatte:q} --train-dir {params.train_dir:q} --options {params.options}"
        " --threads {threads} --log {log:q}"
