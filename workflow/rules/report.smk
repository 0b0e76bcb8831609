# Figures for `snakemake --report report.html`: per sample, contact sheets of the overview and of
# the mask and flow previews, and the runtime of each stage from the benchmark files.


rule contact_sheet:
    input:
        video=sheet_video,
    output:
        sheet=report("results/{sample}/report/{sheet}.jpg", caption="../report/sheet.rst",
                     category="{sample}", subcategory="Overview"),
    params:
        settings=settings("contact_sheet"),
    log:
        "logs/contact_sheet/{sample}/{sheet}.log",
    benchmark:
        "benchmarks/contact_sheet/{sample}/{sheet}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte contact-sheet --video {input.video:q} --out {output.sheet:q} --settings {params.settings}"
        " --log {log:q}"


rule runtimes:
    input:
        stage_benchmarks,
    output:
        plot=report("results/{sample}/report/runtimes.png", caption="../report/runtimes.rst",
                    category="{sample}", subcategory="Runtimes"),
        table=report("results/{sample}/report/runtimes.html", caption="../report/runtimes.rst",
                     category="{sample}", subcategory="Runtimes"),
    log:
        "logs/runtimes/{sample}.log",
    benchmark:
        "benchmarks/runtimes/{sample}.tsv"
    conda:
        "../../envs/video.yaml"
    shell:
        "$OMNIMATTE_PYTHON -m omnimatte runtimes --sample {wildcards.sample} --benchmarks {input:q} --out-plot {output.plot:q}"
        " --out-table {output.table:q} --log {log:q}"


rule report_figures:
    input:
        expand("results/{sample}/report/{sheet}.jpg", sample=SAMPLES, sheet=SHEETS),
        expand("results/{sample}/report/runtimes.png", sample=SAMPLES),
        expand("results/{sample}/diagnostics.png", sample=SAMPLES),
