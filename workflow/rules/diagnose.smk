# Stage 7: where the clip breaks the method's assumptions (the camera model, a moving background,
# exposure, the masks, the layers; optionally two seeds), with a verdict per check. After training;
# the overview video outlines what it flags (diagnose.show_in_overview).


rule diagnose:
    input:
        unpack(logs_of("frames", "flow", "masks", "homography", "train")),
        unpack(diagnose_second_seed),
        frames="results/{video}/frames",
        masks="results/{video}/masks",
        homographies="results/{video}/homography/homographies.npy",
        canvas="results/{video}/homography/canvas.json",
        flow="results/{video}/flow/forward.npy",
        backward_flow="results/{video}/flow/backward.npy",
        confidence="results/{video}/flow/confidence_forward.npy",
        backward_confidence="results/{video}/flow/confidence_backward.npy",
        omnimatte="results/{video}/omnimatte",
    output:
        report="results/{video}/diagnostics.json",
        sheet=report("results/{video}/diagnostics.png", caption="../report/diagnostics.rst", category="{video}",
                     subcategory="Diagnostics"),
        flags="results/{video}/diagnostics_flags.npz",
        table=report("results/{video}/report/diagnostics.html", caption="../report/diagnostics.rst",
                     category="{video}", subcategory="Diagnostics"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.video}/homography",
        flow=lambda wildcards: f"results/{wildcards.video}/flow",
        second=lambda wildcards, input: f"--second-omnimatte {shlex.quote(input.second_omnimatte)}"
        if "second_omnimatte" in input.keys() else "",
        options=options("diagnose"),
    log:
        "logs/diagnose/{video}.log",
    benchmark:
        "benchmarks/diagnose/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte diagnose --sample {wildcards.video} --frames {input.frames:q} --masks {input.masks:q}"
        " --objects {params.objects:q} --homography {params.homography:q} --flow {params.flow:q}"
        " --omnimatte {input.omnimatte:q} {params.second} --out {output.report:q} --sheet {output.sheet:q}"
        " --flags {output.flags:q} --table {output.table:q} --options {params.options} --log {log:q}"


rule train_second_seed:
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
        omnimatte=directory("results/{video}/second_seed/omnimatte"),
        model="results/{video}/second_seed/train/model.pt",
        losses="results/{video}/second_seed/train/losses.csv",
        plot="results/{video}/second_seed/train/losses.png",
        summary="results/{video}/second_seed/train/summary.json",
    params:
        objects=object_names,
        flow=lambda wildcards: f"results/{wildcards.video}/flow",
        homography=lambda wildcards: f"results/{wildcards.video}/homography",
        train_dir=lambda wildcards: f"results/{wildcards.video}/second_seed/train",
        options=options("train", seed=config["train"].get("seed", 0) + config.get("diagnose", {}).get("seeds", {}).get("seed_offset", 1)),
    threads: threads_for("train", 8)
    resources:
        mem_mb=16000,
        gpu=1,
    log:
        "logs/train_second_seed/{video}.log",
    benchmark:
        "benchmarks/train_second_seed/{video}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte train --sample {wildcards.video} --frames {input.frames:q} --flow {params.flow:q}"
        " --homography {params.homography:q} --masks {input.masks:q} --objects {params.objects:q}"
        " --out {output.omnimatte:q} --train-dir {params.train_dir:q} --options {params.options}"
        " --threads {threads} --log {log:q}"
