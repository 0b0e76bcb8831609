# Stage 4: camera motion, with the objects' masks kept out of the feature matching.


rule homography:
    input:
        frames="results/{video}/frames",
        info="results/{video}/frames_info.json",
        masks="results/{video}/masks",
    output:
        homographies="results/{video}/homography/homographies.npy",
        canvas="results/{video}/homography/canvas.json",
        preview="results/{video}/previews/stabilised.mp4",
    params:
        out=lambda wildcards: f"results/{wildcards.video}/homography",
        options=options("homography"),
    log:
        "logs/homography/{video}.log",
    benchmark:
        "benchmarks/homography/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte homography --sample {wildcards.video} --frames {input.frames} --frames-info {input.info}"
        " --masks {input.masks} --out {params.out} --preview {output.preview}"
        " --options {params.options} --log {log}"
