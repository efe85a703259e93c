rule accuracy_table:
    input:
        unpack(get_table_inputs),
    output:
        table=layout.TABLE,
        tex=layout.TABLE_TEX,
        png=report(
            layout.ACCURACY_PNG,
            caption="../report/accuracy.rst",
            category="Accuracy",
        ),
        svg=layout.ACCURACY_SVG,
    log:
        layout.log(layout.TABLE),
    benchmark:
        layout.benchmark(layout.TABLE)
    conda:
        REPORT_ENV
    threads: job_threads("accuracy_table")
    resources:
        **job_resources("accuracy_table", mem_mb=1000, runtime=30),
    params:
        dataset=lambda wildcards: wildcards.dataset,
        classifier=lambda wildcards: wildcards.classifier,
        attack=lambda wildcards: wildcards.attack,
        denoiser=lambda wildcards: wildcards.denoiser,
    script:
        "../scripts/accuracy_table.py"


report_benchmarks(
    "accuracy_table", layout.TABLE, denoisers=ACCURACY_DENOISERS, every_classifier=True
)


rule accuracy_summary:
    input:
        accuracy_tables=all_outputs(
            layout.TABLE, denoisers=ACCURACY_DENOISERS, every_classifier=True
        ),
    output:
        summary=layout.SUMMARY,
        png=report(
            layout.COMPARISON_PNG,
            caption="../report/comparison.rst",
            category="Accuracy",
        ),
        svg=layout.COMPARISON_SVG,
    log:
        layout.log(layout.SUMMARY),
    conda:
        REPORT_ENV
    threads: job_threads("accuracy_summary")
    resources:
        **job_resources("accuracy_summary", mem_mb=1000, runtime=30),
    script:
        "../scripts/accuracy_summary.py"


rule examples_figure:
    input:
        unpack(get_example_inputs),
    output:
        figure=report(
            layout.EXAMPLES_FIGURE,
            caption="../report/examples.rst",
            category="Examples",
        ),
    log:
        layout.log(layout.EXAMPLES_FIGURE),
    conda:
        REPORT_ENV
    threads: job_threads("examples_figure")
    resources:
        **job_resources("examples_figure", mem_mb=1000, runtime=30),
    params:
        n_images=config["report"]["examples"],
    script:
        "../scripts/examples_figure.py"
