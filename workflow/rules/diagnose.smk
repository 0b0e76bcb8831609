# Stage 7: where the clip breaks the method's assumptions (the camera model, a moving background,
# exposure, the masks, the layers; optionally two seeds), with a verdict per check. After training;
# the overview video outlines what it flags (diagnose.show_in_overview).


rule diagnose:
    input:
        unpack(logs_of("frames", "flow", "masks", "homography", "background_fit", "render")),
        unpack(diagnose_second_seed),
        frames="results/{sample}/frames",
        masks="results/{sample}/masks",
        background_fit="results/{sample}/background_fit.npz",
        homographies="results/{sample}/homography/homographies.npy",
        canvas="results/{sample}/homography/canvas.json",
        flow="results/{sample}/flow/forward.npy",
        backward_flow="results/{sample}/flow/backward.npy",
        confidence="results/{sample}/flow/confidence_forward.npy",
        backward_confidence="results/{sample}/flow/confidence_backward.npy",
        omnimatte="results/{sample}/omnimatte",
    output:
        report="results/{sample}/diagnostics.json",
        sheet=report("results/{sample}/diagnostics.png", caption="../report/diagnostics.rst", category="{sample}",
                     subcategory="Diagnostics"),
        flags="results/{sample}/diagnostics_flags.npz",
        table=report("results/{sample}/report/diagnostics.html", caption="../report/diagnostics.rst",
                     category="{sample}", subcategory="Diagnostics"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        flow=lambda wildcards: f"results/{wildcards.sample}/flow",
        second=lambda wildcards, input: f"--second-omnimatte {shlex.quote(input.second_omnimatte)}"
        if "second_omnimatte" in input.keys() else "",
        settings=settings("diagnose"),
    log:
        "logs/diagnose/{sample}.log",
    benchmark:
        "benchmarks/diagnose/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte diagnose --sample {wildcards.sample} --frames {input.frames:q} --masks {input.masks:q}"
        " --objects {params.objects:q} --homography {params.homography:q} --flow {params.flow:q}"
        " --omnimatte {input.omnimatte:q} {params.second} --out {output.report:q} --sheet {output.sheet:q}"
        " --flags {output.flags:q} --table {output.table:q} --background-fit-file {input.background_fit:q}"
        " --settings {params.settings} --log {log:q}"


rule train_second_seed:
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
        model="results/{sample}/second_seed/train/model.pt",
        losses="results/{sample}/second_seed/train/losses.csv",
        plot="results/{sample}/second_seed/train/losses.png",
        summary="results/{sample}/second_seed/train/summary.json",
    params:
        objects=object_names,
        flow=lambda wildcards: f"results/{wildcards.sample}/flow",
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        train_dir=lambda wildcards: f"results/{wildcards.sample}/second_seed/train",
        effect_reach=effect_reach(),
        settings=train_settings(seed=config["train"].get("seed", 0) + config.get("diagnose", {}).get("seeds", {}).get("seed_offset", 1)),
    threads: threads_for("train", 8)
    resources:
        mem_mb=16000,
        gpu=1,
    log:
        "logs/train_second_seed/{sample}.log",
    benchmark:
        "benchmarks/train_second_seed/{sample}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte train --sample {wildcards.sample} --frames {input.frames:q} --flow {params.flow:q}"
        " --homography {params.homography:q} --masks {input.masks:q} --objects {params.objects:q}"
        " --train-dir {params.train_dir:q} --effect-reach {params.effect_reach} --settings {params.settings}"
        " --threads {threads} --log {log:q}"


rule render_second_seed:
    input:
        unpack(logs_of("frames", "flow", "masks", "homography", "background_fit", "train_second_seed")),
        frames="results/{sample}/frames",
        flow="results/{sample}/flow/forward.npy",
        backward_flow="results/{sample}/flow/backward.npy",
        confidence="results/{sample}/flow/confidence_forward.npy",
        backward_confidence="results/{sample}/flow/confidence_backward.npy",
        homographies="results/{sample}/homography/homographies.npy",
        canvas="results/{sample}/homography/canvas.json",
        masks="results/{sample}/masks",
        background_fit="results/{sample}/background_fit.npz",
        model="results/{sample}/second_seed/train/model.pt",
    output:
        omnimatte=directory("results/{sample}/second_seed/omnimatte"),
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
        "logs/render_second_seed/{sample}.log",
    benchmark:
        "benchmarks/render_second_seed/{sample}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte render --sample {wildcards.sample} --frames {input.frames:q} --flow {params.flow:q}"
        " --homography {params.homography:q} --masks {input.masks:q} --objects {params.objects:q}"
        " --model {input.model:q} --out {output.omnimatte:q} --settings {params.settings}"
        " --background-fit {params.background_fit} --background-fit-file {input.background_fit:q} --threads {threads}"
        " --log {log:q}"
