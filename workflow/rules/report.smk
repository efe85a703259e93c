rule report:
    input:
        unpack(get_benchmarks),
        unpack(get_report_tables),
        summary=layout.SUMMARY,
        comparison=layout.COMPARISON_PNG,
        examples=layout.EXAMPLES_FIGURE,
        # an input, so that editing the template reruns the report (and only it)
        template=REPORT_TEMPLATE,
        accuracy=all_outputs(
            layout.ACCURACY_PNG, denoisers=ACCURACY_DENOISERS, every_classifier=True
        ),
        classifier_metrics=expand(
            layout.CLASSIFIER_METRICS, dataset=DATASET, classifier=CLASSIFIERS
        ),
        denoiser_metrics=expand(
            layout.DENOISER_METRICS,
            dataset=DATASET,
            denoiser=list(config["denoisers"]),
        ),
    output:
        html=layout.REPORT,
    log:
        layout.log(layout.REPORT),
    conda:
        REPORT_ENV
    threads: job_threads("report")
    resources:
        **job_resources("report", mem_mb=1000, runtime=30),
    params:
        config=config,
    script:
        "../scripts/report.py"
