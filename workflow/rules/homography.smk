# Stage 4: camera motion, with the objects' masks kept out of the feature matching.


rule homography:
    input:
        unpack(logs_of("frames", "masks")),
        frames="results/{sample}/frames",
        info="results/{sample}/frames_info.json",
        masks="results/{sample}/masks",
    output:
        homographies="results/{sample}/homography/homographies.npy",
        canvas="results/{sample}/homography/canvas.json",
        preview="results/{sample}/previews/stabilised.mp4",
    params:
        out=lambda wildcards: f"results/{wildcards.sample}/homography",
        settings=settings("homography"),
    log:
        "logs/homography/{sample}.log",
    benchmark:
        "benchmarks/homography/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte homography --sample {wildcards.sample} --frames {input.frames:q} --frames-info {input.info:q}"
        " --masks {input.masks:q} --out {params.out:q} --preview {output.preview:q}"
        " --settings {params.settings} --log {log:q}"
