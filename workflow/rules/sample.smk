rule sample:
    output:
        train=layout.SAMPLE_TRAIN,
        eval=layout.SAMPLE_EVAL,
        manifest=layout.MANIFEST,
    log:
        layout.log(layout.MANIFEST),
    benchmark:
        layout.benchmark(layout.MANIFEST)
    conda:
        TORCH_ENV
    threads: job_threads("sample")
    resources:
        **job_resources("sample", mem_mb=1000, runtime=30),
    params:
        dataset=config["dataset"],
        seed=config["seed"],
    script:
        "../scripts/sample.py"


report_benchmarks("sample", layout.MANIFEST)
