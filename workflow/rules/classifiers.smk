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
    wildcard_constraints:
        classifier=one_of(TRAINED),
    priority: 50
    conda:
        TORCH_ENV
    threads: job_threads("train_classifier")
    resources:
        **job_resources("train_classifier", mem_mb=3000, runtime=240, gpu=True),
    params:
        name=lambda wildcards: wildcards.classifier,
        spec=lambda wildcards: config["classifiers"][wildcards.classifier],
        seed=config["seed"],
        device=config["device"],
        # a checkpoint per epoch, so that a rerun after an interruption continues
        checkpoint=lambda wildcards: layout.fill(
            layout.CLASSIFIER_CHECKPOINT, **wildcards
        ),
    script:
        "../scripts/train_classifier.py"


report_benchmarks("train_classifier", layout.CLASSIFIER)


# timm's pretrained weights: from the cache (filled when the machine is online) or a file;
# run where the workflow starts, since cluster nodes are often offline
rule pretrained_classifier:
    input:
        # the weights file the config names, if any
        source=lambda wildcards: config["classifiers"][wildcards.classifier].get(
            "weights", []
        ),
    output:
        weights=layout.CLASSIFIER,
        metrics=layout.CLASSIFIER_METRICS,
    log:
        layout.log(layout.CLASSIFIER),
    # the benchmark of the stage that makes these files for the other kind
    benchmark:
        layout.benchmark(layout.CLASSIFIER)
    wildcard_constraints:
        classifier=one_of(PRETRAINED),
    localrule: True
    conda:
        TORCH_ENV
    threads: job_threads("pretrained_classifier")
    resources:
        **job_resources("pretrained_classifier", mem_mb=4000, runtime=30),
    params:
        name=lambda wildcards: wildcards.classifier,
        spec=lambda wildcards: config["classifiers"][wildcards.classifier],
    script:
        "../scripts/pretrained_classifier.py"
