rule train_denoiser:
    input:
        train=layout.SAMPLE_TRAIN,
    output:
        weights=layout.DENOISER,
        metrics=layout.DENOISER_METRICS,
    log:
        layout.log(layout.DENOISER),
    benchmark:
        layout.benchmark(layout.DENOISER)
    # the longest job on a CPU: started first, beside the classifiers, on one core
    priority: 100
    conda:
        ENV
    resources:
        mem_mb=3000,
        gpu=GPU,
    params:
        spec=lambda wildcards: config["denoisers"][wildcards.denoiser],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/train_denoiser.py"
