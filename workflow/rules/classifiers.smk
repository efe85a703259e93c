rule train_classifier:
    input:
        train=layout.SAMPLE_TRAIN,
        eval=layout.SAMPLE_EVAL,
    output:
        weights=layout.CLASSIFIER,
        metrics=layout.CLASSIFIER_METRICS,
    log:
        layout.log(layout.CLASSIFIER),
    benchmark:
        layout.benchmark(layout.CLASSIFIER)
    priority: 50
    conda:
        ENV
    resources:
        mem_mb=3000,
        gpu=GPU,
    params:
        spec=lambda wildcards: config["classifiers"][wildcards.classifier],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/train_classifier.py"
