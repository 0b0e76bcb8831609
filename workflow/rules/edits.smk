# What users do with the layers: object removal, colour pop, stroboscope, a new background
# and retiming (shift_ and freeze_, one rule), one MP4 per edit under results/{sample}/edits/.
# `snakemake edits` makes the set that the config's `edits` section and each sample's
# `edit_objects` describe.


rule remove:
    input:
        unpack(edit_inputs(camera=False, sound=True)),
    output:
        video=report("results/{sample}/edits/remove_{object}.mp4", caption="../report/remove.rst",
                     category="{sample}", subcategory="Edits"),
    params:
        objects=object_names,
    log:
        "logs/remove/{sample}/{object}.log",
    benchmark:
        "benchmarks/remove/{sample}/{object}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte remove --sample {wildcards.sample} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --object {wildcards.object} --out {output.video:q} --log {log:q}"


rule colorpop:
    input:
        unpack(edit_inputs(camera=False, sound=True)),
        frames="results/{sample}/frames",
    output:
        video=report("results/{sample}/edits/colorpop_{objects}.mp4", caption="../report/colorpop.rst",
                     category="{sample}", subcategory="Edits"),
    params:
        objects=object_names,
        keep=lambda wildcards: wildcards.objects.replace("+", ","),
    log:
        "logs/colorpop/{sample}/{objects}.log",
    benchmark:
        "benchmarks/colorpop/{sample}/{objects}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte colorpop --sample {wildcards.sample} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --frames {input.frames:q} --keep {params.keep:q} --out {output.video:q} --log {log:q}"


rule stroboscope:
    input:
        unpack(edit_inputs(camera=True, sound=False)),
    output:
        image=report("results/{sample}/edits/stroboscope_{object}.png", caption="../report/stroboscope.rst",
                     category="{sample}", subcategory="Edits"),
        video=report("results/{sample}/edits/stroboscope_{object}.mp4", caption="../report/stroboscope.rst",
                     category="{sample}", subcategory="Edits"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        settings=edit_settings("stroboscope"),
    log:
        "logs/stroboscope/{sample}/{object}.log",
    benchmark:
        "benchmarks/stroboscope/{sample}/{object}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte stroboscope --sample {wildcards.sample} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --homography {params.homography:q} --object {wildcards.object}"
        " --settings {params.settings} --out-image {output.image:q} --out {output.video:q} --log {log:q}"


rule replace_background:
    input:
        unpack(edit_inputs(camera=True, sound=True)),
        image=background_image,
    output:
        video=report("results/{sample}/edits/background_{background}.mp4", caption="../report/background.rst",
                     category="{sample}", subcategory="Edits"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        settings=background_settings,
    log:
        "logs/replace_background/{sample}/{background}.log",
    benchmark:
        "benchmarks/replace_background/{sample}/{background}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte replace-background --sample {wildcards.sample} --omnimatte {input.omnimatte:q}"
        " --objects {params.objects:q} --frames-info {input.info:q} --homography {params.homography:q}"
        " --settings {params.settings} --out {output.video:q} --log {log:q}"


rule retime:
    input:
        unpack(edit_inputs(camera=True, sound=False)),
    output:
        video=report("results/{sample}/edits/{retiming}_{object}.mp4", caption="../report/retime.rst",
                     category="{sample}", subcategory="Edits"),
    params:
        objects=object_names,
        homography=lambda wildcards: f"results/{wildcards.sample}/homography",
        settings=lambda wildcards: shlex.quote(json.dumps({wildcards.retiming: config["edits"][wildcards.retiming]})),
    log:
        "logs/retime/{sample}/{retiming}_{object}.log",
    benchmark:
        "benchmarks/retime/{sample}/{retiming}_{object}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte retime --sample {wildcards.sample} --omnimatte {input.omnimatte:q} --objects {params.objects:q}"
        " --frames-info {input.info:q} --homography {params.homography:q} --object {wildcards.object}"
        " --settings {params.settings} --out {output.video:q} --log {log:q}"


rule edits:
    input:
        [target for sample in SAMPLES for target in edit_targets(sample)],
