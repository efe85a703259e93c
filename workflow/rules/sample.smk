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
        ENV
    resources:
        mem_mb=1000,
    params:
        dataset=config["dataset"],
        seed=config["seed"],
    script:
        "../scripts/sample.py"
