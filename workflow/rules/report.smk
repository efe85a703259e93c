rule report:
    input:
        unpack(get_benchmarks),
        unpack(get_report_tables),
        summary=layout.SUMMARY,
        comparison=layout.COMPARISON_PNG,
        examples=layout.EXAMPLES_FIGURE,
        # an input, so that editing the template reruns the report (and only it)
        template=REPORT_TEMPLATE,
        accuracy=all_outputs(layout.ACCURACY_PNG),
        metrics=all_outputs(layout.CLASSIFIER_METRICS)
        + all_outputs(layout.DENOISER_METRICS),
    output:
        layout.REPORT,
    log:
        layout.log(layout.REPORT),
    conda:
        REPORT_ENV
    threads: job_threads("report")
    resources:
        **job_resources("report", mem_mb=1000, runtime=30),
    params:
        config=config,
        stages=list(STAGES),
    script:
        "../scripts/report.py"
