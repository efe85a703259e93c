rule classify_undefended:
    input:
        images=layout.ADVERSARIAL,
        classifier=layout.CLASSIFIER,
    output:
        predictions=layout.PREDICTIONS_UNDEFENDED,
    log:
        layout.log(layout.PREDICTIONS_UNDEFENDED),
    benchmark:
        layout.benchmark(layout.PREDICTIONS_UNDEFENDED)
    conda:
        TORCH_ENV
    threads: job_threads("classify_undefended")
    resources:
        **job_resources("classify_undefended", mem_mb=2000, runtime=30, gpu=True),
    params:
        batch_size=batch_size("classify_undefended"),
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/classify_undefended.py"


report_benchmarks("classify_undefended", layout.PREDICTIONS_UNDEFENDED)
