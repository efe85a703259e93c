rule classify_undefended:
    input:
        images=layout.ADVERSARIAL,
        classifier=layout.CLASSIFIER,
    output:
        layout.PREDICTIONS_UNDEFENDED,
    log:
        layout.log(layout.PREDICTIONS_UNDEFENDED),
    benchmark:
        layout.benchmark(layout.PREDICTIONS_UNDEFENDED)
    conda:
        ENV
    resources:
        mem_mb=2000,
        gpu=GPU,
    params:
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/classify.py"


rule classify_denoised:
    input:
        images=layout.DENOISED,
        classifier=layout.CLASSIFIER,
    output:
        layout.PREDICTIONS_DENOISED,
    log:
        layout.log(layout.PREDICTIONS_DENOISED),
    benchmark:
        layout.benchmark(layout.PREDICTIONS_DENOISED)
    conda:
        ENV
    resources:
        mem_mb=2000,
        gpu=GPU,
    params:
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/classify.py"
