# Figures for `snakemake --report report.html`: per sample, contact sheets of the overview and of
# the mask and flow previews, and the runtime of each stage from the benchmark files.


rule contact_sheet:
    input:
        video=sheet_video,
    output:
        sheet=report("results/{video}/report/{sheet}.jpg", caption="../report/sheet.rst",
                     category="{video}", subcategory="Overview"),
    params:
        options=options("contact_sheet"),
    log:
        "logs/contact_sheet/{video}/{sheet}.log",
    benchmark:
        "benchmarks/contact_sheet/{video}/{sheet}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte contact-sheet --video {input.video:q} --out {output.sheet:q} --options {params.options}"
        " --log {log:q}"


rule runtimes:
    input:
        stage_benchmarks,
    output:
        plot=report("results/{video}/report/runtimes.png", caption="../report/runtimes.rst",
                    category="{video}", subcategory="Runtimes"),
        table=report("results/{video}/report/runtimes.html", caption="../report/runtimes.rst",
                     category="{video}", subcategory="Runtimes"),
    log:
        "logs/runtimes/{video}.log",
    benchmark:
        "benchmarks/runtimes/{video}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte runtimes --sample {wildcards.video} --benchmarks {input:q} --out-plot {output.plot:q}"
        " --out-table {output.table:q} --log {log:q}"


rule report_figures:
    input:
        expand("results/{video}/report/{sheet}.jpg", video=SAMPLES, sheet=SHEETS),
        expand("results/{video}/report/runtimes.png", video=SAMPLES),
        expand("results/{video}/diagnostics.png", video=SAMPLES),
