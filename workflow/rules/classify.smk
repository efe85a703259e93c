# one job per (classifier, shard) classifies every image set of it (every_set)
rule classify_undefended:
    input:
        images=every_set(layout.ADVERSARIAL),
        classifier=layout.CLASSIFIER,
    output:
        predictions=every_set(layout.PREDICTIONS_UNDEFENDED),
    log:
        layout.log(layout.CLASSIFY_JOB),
    benchmark:
        layout.benchmark(layout.CLASSIFY_JOB)
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


report_benchmarks("classify_undefended", layout.CLASSIFY_JOB)
