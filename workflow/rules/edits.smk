# What users do with the layers: object removal, colour pop, stroboscope, a new background
# and retiming (shift_ and freeze_, one rule), one MP4 per edit under results/{video}/edits/.
# `snakemake edits` makes the set that the config's `edits` section and each sample's
# `edit_objects` describe.


rule remove:
    input:
        unpack(edit_inputs),
    output:
        video=report("results/{video}/edits/remove_{object}.mp4", caption="../report/remove.rst",
                     category="{video}", subcategory="Edits"),
    params:
        objects=object_names,
    log:
        "logs/remove/{video}/{object}.log",
    benchmark:
        "benchmarks/remove/{video}/{object}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte remove --sample {wildcards.video} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --object {wildcards.object} --out {output.video:q} --log {log:q}"


rule colorpop:
    input:
        unpack(edit_inputs),
        frames="results/{video}/frames",
    output:
        video=report("results/{video}/edits/colorpop_{objects}.mp4", caption="../report/colorpop.rst",
                     category="{video}", subcategory="Edits"),
    params:
        objects=object_names,
        keep=lambda wildcards: wildcards.objects.replace("+", ","),
    log:
        "logs/colorpop/{video}/{objects}.log",
    benchmark:
        "benchmarks/colorpop/{video}/{objects}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte colorpop --sample {wildcards.video} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --frames {input.frames:q} --keep {params.keep:q} --out {output.video:q} --log {log:q}"


rule stroboscope:
    input:
        unpack(edit_inputs),
    output:
        image=report("results/{video}/edits/stroboscope_{object}.png", caption="../report/stroboscope.rst",
                     category="{video}", subcategory="Edits"),
        video=report("results/{video}/edits/stroboscope_{object}.mp4", caption="../report/stroboscope.rst",
                     category="{video}", subcategory="Edits"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.video}/homography",
        options=edit_options("stroboscope"),
    log:
        "logs/stroboscope/{video}/{object}.log",
    benchmark:
        "benchmarks/stroboscope/{video}/{object}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte stroboscope --sample {wildcards.video} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --homography {params.homography:q} --object {wildcards.object}"
        " --options {params.options} --out-image {output.image:q} --out {output.video:q} --log {log:q}"


rule replace_background:
    input:
        unpack(edit_inputs),
        image=background_image,
    output:
        video=report("results/{video}/edits/background_{background}.mp4", caption="../report/background.rst",
                     category="{video}", subcategory="Edits"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.video}/homography",
        options=background_options,
    log:
        "logs/replace_background/{video}/{background}.log",
    benchmark:
        "benchmarks/replace_background/{video}/{background}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte replace-background --sample {wildcards.video} --omnimatte {input.omnimatte:q}"
        " --objects {params.objects:q} --frames-info {input.info:q} --homography {params.homography:q}"
        " --options {params.options} --out {output.video:q} --log {log:q}"


rule retime:
    input:
        unpack(edit_inputs),
    output:
        video=report("results/{video}/edits/{retiming}_{object}.mp4", caption="../report/retime.rst",
                     category="{video}", subcategory="Edits"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.video}/homography",
        options=lambda wildcards: shlex.quote(json.dumps({wildcards.retiming: config["edits"][wildcards.retiming]})),
    log:
        "logs/retime/{video}/{retiming}_{object}.log",
    benchmark:
        "benchmarks/retime/{video}/{retiming}_{object}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte retime --sample {wildcards.video} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --homography {params.homography:q} --object {wildcards.object}"
        " --options {params.options} --out {output.video:q} --log {log:q}"


rule edits:
    input:
        [target for video in SAMPLES for target in edit_targets(video)],
