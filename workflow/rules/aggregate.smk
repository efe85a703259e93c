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
        grid=lambda wildcards: table_grid(wildcards.attack),
    script:
        "../scripts/accuracy_table.py"


rule summary:
    input:
        all_outputs(layout.TABLE),
    output:
        table=layout.SUMMARY,
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
    threads: job_threads("summary")
    resources:
        **job_resources("summary", mem_mb=1000, runtime=30),
    script:
        "../scripts/summary.py"


rule examples:
    input:
        unpack(get_example_inputs),
    output:
        report(
            layout.EXAMPLES_FIGURE,
            caption="../report/examples.rst",
            category="Examples",
        ),
    log:
        layout.log(layout.EXAMPLES_FIGURE),
    conda:
        REPORT_ENV
    threads: job_threads("examples")
    resources:
        **job_resources("examples", mem_mb=1000, runtime=30),
    params:
        n_images=config["report"]["examples"],
        epsilon=lambda wildcards: EPSILONS[FIRST["attack"]][-1],
        sigmas=SIGMAS,
    script:
        "../scripts/examples.py"
