# The synthetic demo clips: video, coarse masks and ground-truth layers, made offline.


rule demo_clip:
    output:
        video="resources/demo/{demo}/video.mp4",
        masks=directory("resources/demo/{demo}/masks"),
        gt=directory("resources/demo/{demo}/gt"),
    params:
        out=lambda wildcards: f"resources/demo/{wildcards.demo}",
        settings=lambda wildcards: shlex.quote(json.dumps(config["demo"][wildcards.demo])),
    log:
        "logs/demo_clip/{demo}.log",
    benchmark:
        "benchmarks/demo_clip/{demo}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte demo --out {params.out:q} --settings {params.settings} --log {log:q}"
