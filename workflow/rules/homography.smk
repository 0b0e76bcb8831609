# Stage 4: camera motion, with the objects' masks kept out of the feature matching.


rule homography:
    input:
        unpack(logs_of("frames", "masks")),
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
    threads: threads_for("homography", 2)
    log:
        "logs/homography/{video}.log",
    benchmark:
        "benchmarks/homography/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte homography --sample {wildcards.video} --frames {input.frames:q} --frames-info {input.info:q}"
        " --masks {input.masks:q} --out {params.out:q} --preview {output.preview:q}"
        " --options {params.options} --threads {threads} --log {log:q}"
